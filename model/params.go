package model

import "fmt"

// CheckParams reports the first parameter of c that is missing, has the
// wrong number of values or is not c's.
func CheckParams(c Config, p map[string][]float32) error {
	return checkSizes(c, len(p), func(name string) (int, bool) { v, ok := p[name]; return len(v), ok })
}

// CheckParams64 is CheckParams for float64 values.
func CheckParams64(c Config, p map[string][]float64) error {
	return checkSizes(c, len(p), func(name string) (int, bool) { v, ok := p[name]; return len(v), ok })
}

func checkSizes(c Config, n int, get func(string) (int, bool)) error {
	shapes := ParamShapes(c)
	for _, ps := range shapes {
		got, ok := get(ps.Name)
		if !ok {
			return fmt.Errorf("parameter %s %v is missing", ps.Name, ps.Shape)
		}
		if got != ps.Size() {
			return fmt.Errorf("parameter %s has %d values, shape %v needs %d", ps.Name, got, ps.Shape, ps.Size())
		}
	}
	if n != len(shapes) {
		return fmt.Errorf("%d parameters given, %s has %d", n, c, len(shapes))
	}
	return nil
}

// Values converts parameters for graph.Initializers ([]float32 per name).
func Values(p map[string][]float32) map[string]any {
	out := make(map[string]any, len(p))
	for k, v := range p {
		out[k] = v
	}
	return out
}

// Values64 converts float64 parameters for graph.Initializers.
func Values64(p map[string][]float64) map[string]any {
	out := make(map[string]any, len(p))
	for k, v := range p {
		out[k] = v
	}
	return out
}
