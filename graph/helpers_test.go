package graph_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// session serialises g and loads it into ONNX Runtime (CPU, one thread, so
// concurrent test binaries do not fight over the two cores).
func session(t testing.TB, g *graph.Graph, opts ...graph.BuildOption) *ort.Session {
	t.Helper()
	orttest.Init(t)
	model, err := g.Serialize(opts...)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	s, err := ort.NewSession(model, ort.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// run executes a session or fails the test.
func run(t testing.TB, s *ort.Session, feeds map[string]*ort.Tensor) map[string]*ort.Tensor {
	t.Helper()
	out, err := s.Run(feeds)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return out
}

// uniform returns n values uniform in [lo, hi) from a fixed-seed source.
func uniform(r *rand.Rand, n int, lo, hi float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = lo + (hi-lo)*r.Float64()
	}
	return v
}

// tensor64 wraps float64 data for a graph tensor's shape.
func tensor64(x *graph.Tensor, data []float64) *ort.Tensor {
	return ort.NewTensor(x.Shape().Int64s(), data)
}

// maxRelErr is max |a−b| / max(1, |b|).
func maxRelErr(a, b []float64) float64 {
	worst := 0.0
	for i := range a {
		worst = max(worst, math.Abs(a[i]-b[i])/max(1, math.Abs(b[i])))
	}
	return worst
}
