package graph_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// TestInferredShapesMatchONNXRuntime builds one graph that uses every forward
// op, outputs every result, and checks the dtype and shape ONNX Runtime
// reports for each against the builder's inference.
func TestInferredShapesMatchONNXRuntime(t *testing.T) {
	g, results := allOpsGraph()
	s := orttest.Session(t, g)
	rnd := rand.New(rand.NewPCG(5, 6))
	out := orttest.Run(t, s, map[string]*ort.Tensor{
		"x":   ort.NewTensor([]int64{2, 3, 4}, uniform(rnd, 24, -1, 1)),
		"v":   ort.NewTensor([]int64{4}, uniform(rnd, 4, -1, 1)),
		"ids": ort.NewTensor([]int64{2, 5}, []int64{0, 1, 2, 3, 1, 2, 2, 0, 1, 3}),
	})
	for name, want := range results {
		got := out[name]
		if got == nil {
			t.Errorf("%s: no output", name)
			continue
		}
		if gs := fmt.Sprint(got.Shape); gs != fmt.Sprint(want.Shape().Int64s()) {
			t.Errorf("%s: ONNX Runtime shape %s, inferred %v", name, gs, want.Shape())
		}
		if dt := dtypeOf(got); dt != want.DType() {
			t.Errorf("%s: ONNX Runtime dtype %v, inferred %v", name, dt, want.DType())
		}
	}
}

// allOpsGraph uses every forward op and outputs each result under a name.
func allOpsGraph() (*graph.Graph, map[string]*graph.Tensor) {
	g := graph.New("shapes", graph.WithFloat(graph.Float64))
	x := g.Input("x", graph.Float64, 2, 3, 4)
	v := g.Input("v", graph.Float64, 4)
	ids := g.Input("ids", graph.Int64, 2, 5)
	pos := graph.Add(x, g.Scalar(2)) // positive, for Log, Sqrt, Pow
	mask := graph.Greater(x, g.Scalar(0))
	parts := graph.Split(x, 2, 1, 3)

	results := map[string]*graph.Tensor{
		"add":         graph.Add(x, v),
		"sub":         graph.Sub(graph.Reshape(v, 4, 1, 1, 1), x),
		"mul":         graph.Mul(x, graph.Unsqueeze(v, 0)),
		"div":         graph.Div(x, pos),
		"max":         graph.Max(x, v),
		"min":         graph.Min(v, x),
		"pow":         graph.Pow(pos, 1.5),
		"neg":         graph.Neg(x),
		"abs":         graph.Abs(x),
		"sign":        graph.Sign(x),
		"exp":         graph.Exp(x),
		"log":         graph.Log(pos),
		"sqrt":        graph.Sqrt(pos),
		"reciprocal":  graph.Reciprocal(pos),
		"sigmoid":     graph.Sigmoid(x),
		"softplus":    graph.Softplus(x),
		"tanh":        graph.Tanh(x),
		"relu":        graph.Relu(x),
		"silu":        graph.Silu(x),
		"identity":    graph.Identity(x),
		"stop":        graph.StopGradient(x),
		"clip":        graph.Clip(x, -0.5, 0.5),
		"cast":        graph.Cast(x, graph.Float32),
		"cast_int":    graph.Cast(ids, graph.Float64),
		"greater":     mask,
		"less":        graph.Less(x, v),
		"ge":          graph.GreaterOrEqual(v, x),
		"le":          graph.LessOrEqual(x, v),
		"equal":       graph.Equal(ids, g.Const([]int64{3}, 1)),
		"and":         graph.And(mask, graph.Less(x, g.Scalar(0.5))),
		"or":          graph.Or(mask, graph.Less(v, g.Scalar(0))),
		"not":         graph.Not(mask),
		"where":       graph.Where(mask, x, g.Scalar(-1)),
		"matmul":      graph.MatMul(x, graph.Transpose(x, 0, 2, 1)),
		"matvec":      graph.MatMul(x, v),
		"vecmat":      graph.MatMul(v, graph.Transpose(x, 0, 2, 1)),
		"transpose":   graph.Transpose(x),
		"reshape":     graph.Reshape(x, -1, 6),
		"unsqueeze":   graph.Unsqueeze(x, 1, -1),
		"squeeze":     graph.Squeeze(graph.Unsqueeze(x, 1), 1),
		"slice":       graph.Slice(x, -1, 1, 100),
		"concat":      graph.Concat(0, x, x, x),
		"split0":      parts[0],
		"split1":      parts[1],
		"pad":         graph.Pad(x, []int{0, 1, 2}, []int{1, 0, 3}, 0),
		"expand":      graph.Expand(v, 5, 1, 4),
		"sum":         graph.ReduceSum(x, 0, 2),
		"sum_keep":    graph.ReduceSumKeep(x, 1),
		"mean":        graph.ReduceMean(x, -1),
		"mean_keep":   graph.ReduceMeanKeep(x, 0, 1),
		"max_reduce":  graph.ReduceMax(x, 1),
		"max_keep":    graph.ReduceMaxKeep(x),
		"cumsum":      graph.CumSum(x, 1, true, true),
		"softmax":     graph.Softmax(x, 1),
		"log_softmax": graph.LogSoftmax(x, -1),
		"onehot":      graph.OneHot(ids, 7, graph.Float32),
		"gather":      graph.Gather(x, ids, 2),
		"embedding":   graph.Gather(graph.Reshape(x, 6, 4), ids, 0),
		"arange":      g.Arange(graph.Int64, 5),
		"zeros":       g.Zeros(graph.Float64, 2, 2),
		"ones":        g.Ones(graph.Bool, 3),
	}
	for name, r := range results {
		g.Output(name, r)
	}
	return g, results
}

func dtypeOf(t *ort.Tensor) graph.DType {
	switch t.Data.(type) {
	case []float32:
		return graph.Float32
	case []float64:
		return graph.Float64
	case []int64:
		return graph.Int64
	case []bool:
		return graph.Bool
	}
	return 0
}
