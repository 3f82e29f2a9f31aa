package graph_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// randomComposition builds a random DAG of bounded ops over (3, 3) values:
// each step combines one or two earlier values, so values fan out to several
// consumers and gradients must be summed along many paths.
func randomComposition(seed uint64) func(xs []*graph.Tensor) *graph.Tensor {
	return func(xs []*graph.Tensor) *graph.Tensor {
		r := rand.New(rand.NewPCG(seed, 99))
		vals := append(slices.Clone(xs), graph.Tanh(graph.Add(graph.Mul(xs[0], xs[1]), xs[2]))) // uses every input
		pickOne := func() *graph.Tensor { return vals[r.IntN(len(vals))] }
		ops := []func() *graph.Tensor{
			func() *graph.Tensor { return graph.Tanh(graph.Add(pickOne(), pickOne())) },
			func() *graph.Tensor { return graph.Mul(pickOne(), pickOne()) },
			func() *graph.Tensor { return graph.Sigmoid(graph.Sub(pickOne(), pickOne())) },
			func() *graph.Tensor { return graph.Tanh(graph.MatMul(pickOne(), pickOne())) },
			func() *graph.Tensor { return graph.Transpose(pickOne(), 1, 0) },
			func() *graph.Tensor { return graph.Softmax(pickOne(), r.IntN(2)) },
			func() *graph.Tensor { return graph.Mul(pickOne(), graph.ReduceMeanKeep(pickOne(), r.IntN(2))) },
			func() *graph.Tensor {
				p := graph.Split(pickOne(), 1, 1, 2)
				return graph.Concat(1, p[1], graph.Exp(graph.Tanh(p[0])))
			},
			func() *graph.Tensor { return graph.Where(graph.Greater(pickOne(), pickOne()), pickOne(), pickOne()) },
		}
		for range 12 {
			vals = append(vals, ops[r.IntN(len(ops))]())
		}
		out := vals[len(vals)-1]
		for _, v := range vals[len(xs) : len(vals)-1] {
			out = graph.Add(out, v) // every intermediate reaches the loss
		}
		return out
	}
}

func TestRandomCompositionsMatchFiniteDifferences(t *testing.T) {
	for seed := range uint64(6) {
		c := gradCase{
			name:   fmt.Sprint("seed ", seed),
			inputs: []gradInput{in(3, 3), in(3, 3), in(3, 3)},
			f:      randomComposition(seed),
			rtol:   1e-6, // longer chains, slightly more rounding
		}
		t.Run(c.name, func(t *testing.T) { checkGradient(t, c) })
	}
}

func TestGradientWithRespectToAnIntermediateValue(t *testing.T) {
	g := graph.New("intermediate", graph.WithFloat(graph.Float64))
	x := g.Input("x", graph.Float64, 3)
	h := x.MulScalar(2)
	loss := graph.ReduceSum(graph.Square(h)) // dL/dh = 2h = 4x; dL/dx = 8x
	grads, err := graph.Gradients(loss, []*graph.Tensor{h, x})
	if err != nil {
		t.Fatal(err)
	}
	g.Output("dh", grads[0])
	g.Output("dx", grads[1])
	out := orttest.Run(t, orttest.Session(t, g), map[string]*ort.Tensor{"x": tensor64(x, []float64{1, -2, 0.5})})
	if got, want := out["dh"].Float64(), []float64{4, -8, 2}; !slices.Equal(got, want) {
		t.Errorf("dL/dh = %v, want %v", got, want)
	}
	if got, want := out["dx"].Float64(), []float64{8, -16, 4}; !slices.Equal(got, want) {
		t.Errorf("dL/dx = %v, want %v", got, want)
	}
}
