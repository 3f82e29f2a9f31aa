package train

// ParamTensorsForTest exposes the engine's parameters to external tests.
func ParamTensorsForTest(e *Engine) map[string]*buffer { return e.paramTensors() }
