package graph_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/internal/testutil"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// A gradCase checks the gradient rule of one op against central finite
// differences, in float64, through ONNX Runtime.
type gradCase struct {
	op     string                                 // the registry entry it checks
	name   string                                 // what differs from the other cases of op
	inputs []gradInput                            // the tensors differentiated
	f      func(xs []*graph.Tensor) *graph.Tensor // the function under test
	step   float64                                // finite-difference step (default 1e-5)
	rtol   float64                                // tolerance (default 1e-7)
}

type gradInput struct {
	shape  []int
	lo, hi float64 // values are drawn uniformly from [lo, hi) (default [-1, 1))
	values []float64
}

func in(shape ...int) gradInput { return gradInput{shape: shape} }

func (i gradInput) within(lo, hi float64) gradInput { i.lo, i.hi = lo, hi; return i }

func (i gradInput) fixed(v ...float64) gradInput { i.values = v; return i }

func one(f func(x *graph.Tensor) *graph.Tensor) func([]*graph.Tensor) *graph.Tensor {
	return func(xs []*graph.Tensor) *graph.Tensor { return f(xs[0]) }
}

func two(f func(x, y *graph.Tensor) *graph.Tensor) func([]*graph.Tensor) *graph.Tensor {
	return func(xs []*graph.Tensor) *graph.Tensor { return f(xs[0], xs[1]) }
}

// gradCases holds at least one case per gradient rule; Test
// EveryGradientRuleHasAFiniteDifferenceCheck enforces it.
var gradCases = []gradCase{
	// The fused SSD scan is float32 only: its rule (the SSDScanGrad kernel) is
	// checked through casts with a float32-sized step; ort's tests check the
	// same kernel in float64.
	{op: "SSDScan", name: "via float32, last chunk padded", step: 1e-2, rtol: 2e-3, inputs: []gradInput{
		in(1, 5, 2, 2), in(1, 5, 2).within(0.05, 0.5), in(2).within(-2, -0.5), in(1, 5, 3), in(1, 5, 3), in(1, 2, 2, 3),
	}, f: func(xs []*graph.Tensor) *graph.Tensor {
		f := toFloat32(xs)
		y, final := graph.SSDScan(f[0], f[1], f[2], f[3], f[4], f[5], 2)
		return graph.Cast(graph.Concat(0, graph.Reshape(y, 20), graph.Reshape(final, 12)), graph.Float64)
	}},
	// The fused convolution and RMSNorm likewise: a window shorter than the
	// kernel (the next state reaches into the carried one) and a longer one.
	{op: "ConvSilu", name: "via float32, L < W", step: 1e-2, rtol: 2e-3, inputs: []gradInput{
		in(2, 2, 3), in(2, 3, 4), in(3, 4), in(3),
	}, f: func(xs []*graph.Tensor) *graph.Tensor {
		f := toFloat32(xs)
		y, next := graph.ConvSilu(f[0], f[1], f[2], f[3])
		return graph.Cast(graph.Concat(0, graph.Reshape(y, 12), graph.Reshape(next, 24)), graph.Float64)
	}},
	{op: "ConvSilu", name: "via float32, L > W", step: 1e-2, rtol: 2e-3, inputs: []gradInput{
		in(1, 6, 2), in(1, 2, 3), in(2, 3), in(2),
	}, f: func(xs []*graph.Tensor) *graph.Tensor {
		f := toFloat32(xs)
		y, next := graph.ConvSilu(f[0], f[1], f[2], f[3])
		return graph.Cast(graph.Concat(0, graph.Reshape(y, 12), graph.Reshape(next, 6)), graph.Float64)
	}},
	{op: "RMSNorm", name: "via float32", step: 1e-2, rtol: 2e-3, inputs: []gradInput{in(3, 5), in(5)},
		f: func(xs []*graph.Tensor) *graph.Tensor {
			f := toFloat32(xs)
			return graph.Cast(graph.RMSNorm(f[0], f[1], 1e-5), graph.Float64)
		}},
	{op: "GatedRMSNorm", name: "via float32, two heads", step: 1e-2, rtol: 2e-3, inputs: []gradInput{
		in(3, 6), in(3, 6), in(2), in(3, 6).within(-3, 3), in(6),
	}, f: func(xs []*graph.Tensor) *graph.Tensor {
		f := toFloat32(xs)
		return graph.Cast(graph.GatedRMSNorm(f[0], f[1], f[2], f[3], f[4], 1e-5), graph.Float64)
	}},
	{op: "SoftmaxCrossEntropy", name: "via float32, a target outside", step: 1e-2, rtol: 2e-3, inputs: []gradInput{in(2, 3, 5).within(-3, 3)},
		f: func(xs []*graph.Tensor) *graph.Tensor {
			f := toFloat32(xs)
			targets := xs[0].Graph().Const([]int64{0, 4, 2, 5, 1, 3}, 2, 3) // 5 is outside: no loss, no gradient
			return graph.Cast(graph.SoftmaxCrossEntropy(f[0], targets), graph.Float64)
		}},
	{op: "Add", name: "broadcast", inputs: []gradInput{in(2, 3), in(3)}, f: two(graph.Add)},
	{op: "Sub", name: "broadcast both", inputs: []gradInput{in(2, 1, 3), in(4, 1)}, f: two(graph.Sub)},
	{op: "Mul", name: "broadcast", inputs: []gradInput{in(2, 3, 4), in(3, 1)}, f: two(graph.Mul)},
	{op: "Div", name: "broadcast", inputs: []gradInput{in(2, 3), in(2, 1).within(0.5, 2)}, f: two(graph.Div)},
	{op: "Neg", inputs: []gradInput{in(3, 2)}, f: one(graph.Neg)},
	{op: "Abs", inputs: []gradInput{in(6).fixed(-2, -1, -0.5, 0.5, 1, 2)}, f: one(graph.Abs)},
	{op: "Exp", inputs: []gradInput{in(2, 3).within(-3, 3)}, f: one(graph.Exp)},
	{op: "Log", inputs: []gradInput{in(2, 3).within(0.2, 5)}, f: one(graph.Log)},
	{op: "Sqrt", inputs: []gradInput{in(2, 3).within(0.2, 5)}, f: one(graph.Sqrt)},
	{op: "Reciprocal", inputs: []gradInput{in(2, 3).within(0.3, 3)}, f: one(graph.Reciprocal)},
	{op: "Pow", name: "cube", inputs: []gradInput{in(5).within(-2, 2)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.Pow(x, 3) })},
	{op: "Pow", name: "inverse sqrt", inputs: []gradInput{in(5).within(0.2, 4)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.Pow(x, -0.5) })},
	{op: "Sigmoid", inputs: []gradInput{in(2, 3).within(-4, 4)}, f: one(graph.Sigmoid)},
	{op: "Tanh", inputs: []gradInput{in(2, 3).within(-2, 2)}, f: one(graph.Tanh)},
	{op: "Relu", inputs: []gradInput{in(6).fixed(-2, -1, -0.1, 0.1, 1, 2)}, f: one(graph.Relu)},
	{op: "Max", name: "broadcast", inputs: []gradInput{in(2, 3).fixed(-2, 0.5, 3, 1, -1, 0.2), in(3).fixed(0, 0.3, 1.5)}, f: two(graph.Max)},
	{op: "Min", name: "broadcast", inputs: []gradInput{in(2, 3).fixed(-2, 0.5, 3, 1, -1, 0.2), in(3).fixed(0, 0.3, 1.5)}, f: two(graph.Min)},
	{op: "Clip", inputs: []gradInput{in(6).fixed(-3, -0.9, -0.2, 0.4, 0.9, 2)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.Clip(x, -1, 1) })},
	{op: "Identity", inputs: []gradInput{in(2, 2)}, f: one(graph.Identity)},
	// float32 rounds x±h, so the step is large and the tolerance float32's.
	{op: "Cast", name: "via float32", step: 1e-2, rtol: 1e-5, inputs: []gradInput{in(2, 3)}, f: one(func(x *graph.Tensor) *graph.Tensor {
		return graph.Cast(graph.Cast(x, graph.Float32), graph.Float64)
	})},
	{op: "Where", name: "broadcast", inputs: []gradInput{in(2, 3), in(3)}, f: two(func(x, y *graph.Tensor) *graph.Tensor {
		cond := x.Graph().Const([]bool{true, false, true, false, false, true}, 2, 3)
		return graph.Where(cond, x, y)
	})},
	{op: "Transpose", inputs: []gradInput{in(2, 3, 4)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.Transpose(x, 1, 2, 0) })},
	{op: "Reshape", inputs: []gradInput{in(2, 3, 4)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.Reshape(x, 4, -1) })},
	{op: "Unsqueeze", inputs: []gradInput{in(2, 3)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.Unsqueeze(x, 0, -1) })},
	{op: "Squeeze", inputs: []gradInput{in(2, 1, 3, 1)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.Squeeze(x, 1, 3) })},
	{op: "Expand", inputs: []gradInput{in(3, 1)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.Expand(x, 2, 3, 4) })},
	{op: "MatMul", name: "batched broadcast", inputs: []gradInput{in(2, 3, 4), in(4, 5)}, f: two(graph.MatMul)},
	{op: "MatMul", name: "both batched", inputs: []gradInput{in(2, 1, 3, 4), in(3, 4, 2)}, f: two(graph.MatMul)},
	{op: "MatMul", name: "vector times matrix", inputs: []gradInput{in(4), in(2, 4, 3)}, f: two(graph.MatMul)},
	{op: "MatMul", name: "matrix times vector", inputs: []gradInput{in(3, 4), in(4)}, f: two(graph.MatMul)},
	{op: "Slice", inputs: []gradInput{in(3, 6)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.Slice(x, 1, 1, -2) })},
	{op: "Pad", inputs: []gradInput{in(2, 3)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.Pad(x, []int{1, 0}, []int{0, 2}, 0.5) })},
	{op: "Concat", inputs: []gradInput{in(2, 3), in(2, 1)}, f: two(func(x, y *graph.Tensor) *graph.Tensor { return graph.Concat(1, x, y, x) })},
	{op: "Split", name: "unused piece", inputs: []gradInput{in(2, 7)}, f: one(func(x *graph.Tensor) *graph.Tensor {
		p := graph.Split(x, -1, 2, 3, 2)
		return graph.Concat(1, graph.Square(p[0]), p[2])
	})},
	{op: "ReduceSum", name: "keep", inputs: []gradInput{in(2, 3, 4)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.ReduceSumKeep(x, 0, 2) })},
	{op: "ReduceSum", name: "drop", inputs: []gradInput{in(2, 3, 4)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.ReduceSum(x, -1) })},
	{op: "ReduceMean", inputs: []gradInput{in(2, 3, 4)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.ReduceMean(x, 1) })},
	{op: "ReduceMax", inputs: []gradInput{in(2, 3).fixed(1, 5, 2, -1, -3, 0.5)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.ReduceMaxKeep(x, 1) })},
	{op: "CumSum", name: "forward", inputs: []gradInput{in(2, 5)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.CumSum(x, 1, false, false) })},
	{op: "CumSum", name: "reverse", inputs: []gradInput{in(2, 5)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.CumSum(x, 1, false, true) })},
	{op: "CumSum", name: "exclusive", inputs: []gradInput{in(5, 2)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.CumSum(x, 0, true, false) })},
	{op: "CumSum", name: "exclusive reverse", inputs: []gradInput{in(5, 2)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.CumSum(x, -2, true, true) })},
	{op: "Softmax", inputs: []gradInput{in(2, 5).within(-2, 2)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.Softmax(x, -1) })},
	{op: "LogSoftmax", inputs: []gradInput{in(3, 4).within(-2, 2)}, f: one(func(x *graph.Tensor) *graph.Tensor { return graph.LogSoftmax(x, 0) })},
	{op: "Gather", name: "embedding rows with repeats", inputs: []gradInput{in(5, 3)}, f: one(func(x *graph.Tensor) *graph.Tensor {
		ids := x.Graph().Const([]int64{4, 0, 4, 2, 4, 1}, 2, 3)
		return graph.Gather(x, ids, 0)
	})},
	{op: "Gather", name: "middle axis", inputs: []gradInput{in(2, 4, 3)}, f: one(func(x *graph.Tensor) *graph.Tensor {
		ids := x.Graph().Const([]int64{3, 3, 0}, 3)
		return graph.Gather(x, ids, 1)
	})},
}

// toFloat32 casts every input to float32, for the fused ops' cases.
func toFloat32(xs []*graph.Tensor) []*graph.Tensor {
	f := make([]*graph.Tensor, len(xs))
	for i, x := range xs {
		f[i] = graph.Cast(x, graph.Float32)
	}
	return f
}

func TestEveryGradientRuleHasAFiniteDifferenceCheck(t *testing.T) {
	checked := map[string]bool{}
	for _, c := range gradCases {
		checked[c.op] = true
	}
	for _, op := range graph.GradientOps() {
		if !checked[op] {
			t.Errorf("gradient rule of %s has no finite-difference case in gradCases", op)
		}
	}
	for op := range checked {
		if !slices.Contains(graph.GradientOps(), op) {
			t.Errorf("gradCases checks %s, which has no gradient rule", op)
		}
	}
}

func TestGradientsMatchCentralFiniteDifferences(t *testing.T) {
	for _, c := range gradCases {
		name := c.op
		if c.name != "" {
			name += "/" + c.name
		}
		t.Run(name, func(t *testing.T) { checkGradient(t, c) })
	}
}

// checkGradient builds L = Σ f(x)·W for a fixed random W, asks Gradients for
// dL/dx, and compares it with (L(x+h·e_i) − L(x−h·e_i)) / 2h for every
// element i of every input, all evaluated by ONNX Runtime.
func checkGradient(t *testing.T, c gradCase) {
	step, rtol := c.step, c.rtol
	if step == 0 {
		step = 1e-5
	}
	if rtol == 0 {
		rtol = 1e-7
	}
	g, xs, vals, grads := gradGraph(t, c)
	s := orttest.Session(t, g)

	feeds := func() map[string]*ort.Tensor {
		f := map[string]*ort.Tensor{}
		for i, x := range xs {
			f[x.Name()] = tensor64(x, slices.Clone(vals[i]))
		}
		return f
	}
	lossAt := func() float64 { return orttest.Run(t, s, feeds())["loss"].Float64()[0] }
	analytic := orttest.Run(t, s, feeds())
	for i := range xs {
		out := analytic[fmt.Sprintf("grad%d", i)]
		if fmt.Sprint(out.Shape) != fmt.Sprint(grads[i].Shape().Int64s()) {
			t.Errorf("gradient %d: ONNX Runtime shape %v, inferred %v", i, out.Shape, grads[i].Shape())
		}
		got := out.Float64()
		want := make([]float64, len(vals[i]))
		for j := range vals[i] {
			v := vals[i][j]
			vals[i][j] = v + step
			up := lossAt()
			vals[i][j] = v - step
			down := lossAt()
			vals[i][j] = v
			want[j] = (up - down) / (2 * step)
		}
		if e := testutil.MaxRelErr(got, want); e > rtol || math.IsNaN(e) {
			t.Errorf("input %d %v: max relative error %.3g > %.1g\nautodiff %v\nfinite d %v", i, c.inputs[i].shape, e, rtol, got, want)
		}
		if slices.Max(abs(want)) == 0 {
			t.Errorf("input %d: the finite-difference gradient is all zeros: the case checks nothing", i)
		}
	}
}

func abs(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Abs(x)
	}
	return out
}

// gradGraph builds L = Σ f(x)·W with outputs "loss" and "grad<i>", and
// returns the inputs' values.
func gradGraph(t *testing.T, c gradCase) (*graph.Graph, []*graph.Tensor, [][]float64, []*graph.Tensor) {
	r := rand.New(rand.NewPCG(3, uint64(len(c.op))))
	g := graph.New("gradcheck_"+c.op, graph.WithFloat(graph.Float64))
	xs := make([]*graph.Tensor, len(c.inputs))
	vals := make([][]float64, len(c.inputs))
	for i, spec := range c.inputs {
		xs[i] = g.Input(fmt.Sprintf("x%d", i), graph.Float64, spec.shape...)
		switch {
		case spec.values != nil:
			vals[i] = spec.values
		case spec.lo != spec.hi:
			vals[i] = uniform(r, graph.Shape(spec.shape).Size(), spec.lo, spec.hi)
		default:
			vals[i] = uniform(r, graph.Shape(spec.shape).Size(), -1, 1)
		}
	}
	y := c.f(xs)
	weights := g.Const(uniform(r, y.Shape().Size(), 0.5, 1.5), y.Shape()...)
	loss := graph.ReduceSum(graph.Mul(y, weights))
	grads, err := graph.Gradients(loss, xs)
	if err != nil {
		t.Fatal(err)
	}
	g.Output("loss", graph.Reshape(loss, 1)) // onnxruntime_go carries no rank-0 tensors
	for i, d := range grads {
		g.Output(fmt.Sprintf("grad%d", i), d)
	}
	return g, xs, vals, grads
}
