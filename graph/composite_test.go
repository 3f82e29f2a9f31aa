package graph_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// rmsNorm is x / √(mean(x²) + ε) ⊙ w over the last axis.
func rmsNorm(x, w *graph.Tensor) *graph.Tensor {
	ms := graph.ReduceMeanKeep(graph.Square(x), -1)
	return graph.Mul(graph.Div(x, graph.Sqrt(ms.AddScalar(1e-5))), w)
}

// crossEntropy is the mean over rows of −log softmax(logits)[target], with the
// target as a one-hot row.
func crossEntropy(logits *graph.Tensor, targets []int64) *graph.Tensor {
	g := logits.Graph()
	v := logits.Dim(-1)
	ids := g.Const(targets, logits.Shape()[:logits.Rank()-1]...)
	picked := graph.ReduceSum(graph.Mul(graph.OneHot(ids, v, logits.DType()), graph.LogSoftmax(logits, -1)), -1)
	return graph.Neg(graph.ReduceMean(picked))
}

// maskedExpSegsum is Lmat of mamba2.md: exp(Acum_l − Acum_s) for l ≥ s and 0
// above the diagonal, built as Where(causal, diff, −∞) and only then Exp.
func maskedExpSegsum(a *graph.Tensor) *graph.Tensor {
	g := a.Graph()
	l := a.Dim(-1)
	acum := graph.CumSum(a, -1, false, false)
	diff := graph.Sub(graph.Unsqueeze(acum, -1), graph.Unsqueeze(acum, -2)) // [l, s]
	pos := g.Arange(graph.Int64, l)
	causal := graph.GreaterOrEqual(graph.Unsqueeze(pos, -1), graph.Unsqueeze(pos, 0))
	return graph.Exp(graph.Where(causal, diff, graph.ScalarLike(a, math.Inf(-1))))
}

// segsumDecays has one decay (−800) whose segment sums overflow exp above
// the diagonal: exp(+800) is +Inf in float64.
var segsumDecays = []float64{-0.5, -1.2, -800, -0.3, -0.7, -0.2}

var compositeCases = []gradCase{
	{name: "RMSNorm", inputs: []gradInput{in(2, 3, 5).within(-2, 2), in(5).within(0.5, 1.5)}, f: two(rmsNorm)},
	{name: "Silu", inputs: []gradInput{in(2, 4).within(-4, 4)}, f: one(graph.Silu)},
	{name: "Softplus", inputs: []gradInput{in(2, 4).within(-6, 6)}, f: one(graph.Softplus)},
	{name: "LogSoftmaxCrossEntropyOneHot", inputs: []gradInput{in(2, 3, 6).within(-3, 3)}, f: one(func(x *graph.Tensor) *graph.Tensor {
		return graph.Reshape(crossEntropy(x, []int64{0, 5, 2, 2, 1, 4}), 1)
	})},
	{name: "MaskedExpSegsum", inputs: []gradInput{in(6).fixed(segsumDecays...)}, f: one(maskedExpSegsum)},
}

func TestCompositeGradientsMatchCentralFiniteDifferences(t *testing.T) {
	for _, c := range compositeCases {
		t.Run(c.name, func(t *testing.T) { checkGradient(t, c) })
	}
}

// TestCrossEntropyValueMatchesGo checks the loss itself, not only its
// gradient, against a direct computation.
func TestCrossEntropyValueMatchesGo(t *testing.T) {
	g := graph.New("ce", graph.WithFloat(graph.Float64))
	x := g.Input("logits", graph.Float64, 3, 4)
	targets := []int64{3, 0, 1}
	g.Output("loss", graph.Reshape(crossEntropy(x, targets), 1))
	logits := uniform(rand.New(rand.NewPCG(7, 8)), 12, -3, 3)
	got := orttest.Run(t, orttest.Session(t, g), map[string]*ort.Tensor{"logits": tensor64(x, logits)})["loss"].Float64()[0]
	want := 0.0
	for r, tgt := range targets {
		row := logits[4*r : 4*r+4]
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(v)
		}
		want += math.Log(sum) - row[tgt]
	}
	want /= 3
	if math.Abs(got-want) > 1e-14 {
		t.Errorf("cross-entropy %v, want %v", got, want)
	}
}

// TestMaskedSegsumKeepsNaNOutOfGradients checks the whole gradient for NaN
// and Inf, and that the naive form (Exp first, then multiply by the 0/1 mask)
// does produce NaN on these decays — so the test would see the mistake.
func TestMaskedSegsumKeepsNaNOutOfGradients(t *testing.T) {
	naive := func(a *graph.Tensor) *graph.Tensor {
		g := a.Graph()
		l := a.Dim(-1)
		acum := graph.CumSum(a, -1, false, false)
		diff := graph.Sub(graph.Unsqueeze(acum, -1), graph.Unsqueeze(acum, -2))
		pos := g.Arange(graph.Int64, l)
		causal := graph.Cast(graph.GreaterOrEqual(graph.Unsqueeze(pos, -1), graph.Unsqueeze(pos, 0)), a.DType())
		return graph.Mul(graph.Exp(diff), causal)
	}
	for _, tc := range []struct {
		name    string
		f       func(*graph.Tensor) *graph.Tensor
		wantNaN bool
	}{{"where then exp", maskedExpSegsum, false}, {"exp then mask", naive, true}} {
		g := graph.New("segsum", graph.WithFloat(graph.Float64))
		a := g.Input("a", graph.Float64, len(segsumDecays))
		lmat := tc.f(a)
		loss := graph.ReduceSum(lmat)
		grads, err := graph.Gradients(loss, []*graph.Tensor{a})
		if err != nil {
			t.Fatal(err)
		}
		g.Output("lmat", lmat)
		g.Output("grad", grads[0])
		out := orttest.Run(t, orttest.Session(t, g), map[string]*ort.Tensor{"a": tensor64(a, slices.Clone(segsumDecays))})
		bad := slices.ContainsFunc(out["grad"].Float64(), func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) })
		if bad != tc.wantNaN {
			t.Errorf("%s: gradient %v (NaN or Inf: %v, want %v)", tc.name, out["grad"].Float64(), bad, tc.wantNaN)
		}
		if !tc.wantNaN && slices.ContainsFunc(out["lmat"].Float64(), math.IsNaN) {
			t.Errorf("%s: Lmat has NaN: %v", tc.name, out["lmat"].Float64())
		}
	}
}

// TestTwoLayerMLPLossFalls trains y = W₂·tanh(W₁x + b₁) on a fixed regression
// task with plain SGD inside one ONNX Runtime graph per step (float32, as
// training runs): inputs are the parameters, outputs the loss and the updated
// parameters, and Go swaps them between steps.
func TestTwoLayerMLPLossFalls(t *testing.T) {
	const batch, in, hidden, lr, steps = 16, 4, 8, 0.1, 60
	g := graph.New("mlp_step", graph.WithFloat(graph.Float32))
	x := g.Input("x", graph.Float32, batch, in)
	y := g.Input("y", graph.Float32, batch, 1)
	exit := g.Scope("layers.0")
	w1, b1 := g.Param("weight", in, hidden), g.Param("bias", hidden)
	exit()
	exit = g.Scope("layers.1")
	w2 := g.Param("weight", hidden, 1)
	exit()
	pred := graph.Tanh(x.MatMul(w1).Add(b1)).MatMul(w2)
	loss := graph.ReduceMean(graph.Square(pred.Sub(y)))
	params := g.Params()
	grads, err := graph.Gradients(loss, params)
	if err != nil {
		t.Fatal(err)
	}
	g.Output("loss", graph.Reshape(loss, 1))
	for i, p := range params {
		g.Output("new."+p.Name(), p.Sub(grads[i].MulScalar(lr)))
	}
	s := orttest.Session(t, g)

	r := rand.New(rand.NewPCG(9, 10))
	xs := make([]float32, batch*in)
	ys := make([]float32, batch)
	for i := range batch {
		sum := 0.0
		for j := range in {
			v := 2*r.Float64() - 1
			xs[i*in+j] = float32(v)
			sum += v * float64(j+1) / 4
		}
		ys[i] = float32(math.Sin(sum))
	}
	values := map[string][]float32{}
	for _, p := range params {
		v := make([]float32, p.Shape().Size())
		for i := range v {
			v[i] = float32(r.NormFloat64() * 0.5)
		}
		values[p.Name()] = v
	}
	var losses []float32
	for range steps {
		feeds := map[string]*ort.Tensor{
			"x": ort.NewTensor([]int64{batch, in}, xs),
			"y": ort.NewTensor([]int64{batch, 1}, ys),
		}
		for _, p := range params {
			feeds[p.Name()] = ort.NewTensor(p.Shape().Int64s(), values[p.Name()])
		}
		out := orttest.Run(t, s, feeds)
		losses = append(losses, out["loss"].Float32()[0])
		for _, p := range params {
			values[p.Name()] = out["new."+p.Name()].Float32()
		}
	}
	t.Logf("loss: step 0 %.4f, step %d %.4f", losses[0], steps-1, losses[steps-1])
	if !(losses[steps-1] < 0.3*losses[0]) {
		t.Errorf("loss fell from %.4f to %.4f only (want below 30%%): %v", losses[0], losses[steps-1], losses)
	}
	for i := 1; i < len(losses); i++ {
		if losses[i] > losses[i-1]*1.001 {
			t.Errorf("loss rose at step %d: %.5f → %.5f", i, losses[i-1], losses[i])
		}
	}
}
