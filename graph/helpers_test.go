package graph_test

import (
	"math/rand/v2"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/ort"
)

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
