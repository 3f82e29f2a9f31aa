package train

// ParamTensorsForTest exposes the engine's parameters to external tests.
func ParamTensorsForTest(e *Engine) map[string]*buffer {
	m, err := e.paramTensors()
	if err != nil {
		panic(err)
	}
	return m
}
