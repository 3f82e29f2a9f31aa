package model_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// lossGraph builds the training loss (and, with grads, d loss / d every
// parameter as outputs "grad.NAME") for batch B, length L in float64.
func lossGraph(t *testing.T, c model.Config, B, L int, grads bool) (*ort.Session, []*graph.Tensor) {
	t.Helper()
	g := graph.New("loss", graph.WithFloat(graph.Float64))
	ids := g.Input("ids", graph.Int64, B, L)
	targets := g.Input("targets", graph.Int64, B, L)
	mask := g.Input("mask", graph.Float64, B, L)
	loss, _, _, params := model.TrainLoss(c)(g, ids, targets, mask)
	g.Output("loss", graph.Reshape(loss, 1))
	if grads {
		gs, err := graph.Gradients(loss, params)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range params {
			g.Output("grad."+p.Name(), gs[i])
		}
	}
	return orttest.Session(t, g), params
}

type window struct {
	ids, targets []int64
	mask         []float64
	st           model.States64
}

func randomWindow(c model.Config, B, L int, r *rand.Rand) window {
	seq := flatIDs(randomIDs(c, B, L+1, r))
	w := window{st: randomStates(c, B, r)}
	for b := range B {
		w.ids = append(w.ids, seq[b*(L+1):b*(L+1)+L]...)
		w.targets = append(w.targets, seq[b*(L+1)+1:(b+1)*(L+1)]...)
	}
	for range B * L {
		w.mask = append(w.mask, float64(r.IntN(4)/3^1)) // about 3 in 4 positions count
	}
	return w
}

func (w window) feeds(c model.Config, p map[string][]float64, B, L int) map[string]*ort.Tensor {
	f := paramFeeds(c, p, nil)
	stateFeeds(c, B, w.st, f)
	f["ids"] = ort.NewTensor([]int64{int64(B), int64(L)}, w.ids)
	f["targets"] = ort.NewTensor([]int64{int64(B), int64(L)}, w.targets)
	f["mask"] = ort.NewTensor([]int64{int64(B), int64(L)}, w.mask)
	return f
}

func TestLossIsMaskedMeanNextTokenCrossEntropy(t *testing.T) {
	c := testConfig(t)
	r := rand.New(rand.NewPCG(7, 8))
	p := model.InitParams64(c, 4)
	const B, L = 2, 13
	w := randomWindow(c, B, L, r)
	s, _ := lossGraph(t, c, B, L, false)
	got := orttest.Run(t, s, w.feeds(c, p, B, L))["loss"].Float64()[0]
	want, err := model.ReferenceLoss(c, p, w.ids, w.targets, w.mask, B, L, w.st)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-10*max(1, want) {
		t.Errorf("graph loss %.12g, reference %.12g", got, want)
	}
	// A random model predicts about ln V nats per token.
	if want < 0.5*math.Log(float64(c.VocabSize)) || want > 2*math.Log(float64(c.VocabSize)) {
		t.Errorf("loss %.3g of an untrained model is far from ln V = %.3g", want, math.Log(float64(c.VocabSize)))
	}
	// Masked-out positions do not count: changing their targets changes nothing.
	w2 := w
	w2.targets = slices.Clone(w.targets)
	for i, m := range w.mask {
		if m == 0 {
			w2.targets[i] = (w2.targets[i] + 1) % int64(c.VocabSize)
		}
	}
	if got2 := orttest.Run(t, s, w2.feeds(c, p, B, L))["loss"].Float64()[0]; got2 != got {
		t.Errorf("a masked-out target changed the loss: %.12g → %.12g", got, got2)
	}
}

func TestTrainLossDeclaresStatesAndParamsInOrder(t *testing.T) {
	c := testConfig(t)
	g := graph.New("contract", graph.WithFloat(graph.Float32))
	ids := g.Input("ids", graph.Int64, 3, 10)
	loss, in, out, params := model.TrainLoss(c)(g, ids, g.Input("targets", graph.Int64, 3, 10), g.Input("mask", graph.Float32, 3, 10))
	if err := g.Err(); err != nil {
		t.Fatal(err)
	}
	if loss.Rank() != 0 || loss.DType() != graph.Float32 {
		t.Errorf("loss %v, want a float32 scalar", loss)
	}
	inNames, outNames := model.StateNames(c)
	shapes := model.StateShapes(c, 3)
	if len(in) != len(inNames) || len(out) != len(outNames) {
		t.Fatalf("%d state inputs and %d outputs, want %d", len(in), len(out), len(inNames))
	}
	for i := range in {
		if in[i].Name() != inNames[i] || out[i].Name() != outNames[i] || !slices.Equal([]int(in[i].Shape()), shapes[i]) || !slices.Equal([]int(out[i].Shape()), shapes[i]) {
			t.Errorf("state %d: %v → %v, want %s → %s of shape %v", i, in[i], out[i], inNames[i], outNames[i], shapes[i])
		}
	}
	want := model.ParamShapes(c)
	if len(params) != len(want) {
		t.Fatalf("%d params, want %d", len(params), len(want))
	}
	for i, p := range params {
		if p.Name() != want[i].Name || !slices.Equal([]int(p.Shape()), want[i].Shape) || !p.IsParam() {
			t.Errorf("param %d is %v, want %s %v", i, p, want[i].Name, want[i].Shape)
		}
	}
	bad := c
	bad.HeadDim = 5
	g2 := graph.New("bad", graph.WithFloat(graph.Float32))
	model.TrainLoss(bad)(g2, g2.Input("ids", graph.Int64, 1, 4), g2.Input("targets", graph.Int64, 1, 4), g2.Input("mask", graph.Float32, 1, 4))
	if g2.Err() == nil {
		t.Error("an invalid config built a loss without error")
	}
}

func TestGradientsMatchFiniteDifferences(t *testing.T) {
	for name, c := range testConfigs(t) {
		t.Run(name, func(t *testing.T) { testGradientsMatchFiniteDifferences(t, c) })
	}
}

func testGradientsMatchFiniteDifferences(t *testing.T, c model.Config) {
	r := rand.New(rand.NewPCG(9, 10))
	p := model.InitParams64(c, 5)
	const B, L, perParam, eps = 2, 13, 3, 1e-5
	w := randomWindow(c, B, L, r)
	s, params := lossGraph(t, c, B, L, true)
	out := orttest.Run(t, s, w.feeds(c, p, B, L))
	lossAt := func() float64 { return orttest.Run(t, s, w.feeds(c, p, B, L))["loss"].Float64()[0] }
	checked := 0
	for _, pt := range params {
		name := pt.Name()
		grad := out["grad."+name].Float64()
		for range perParam {
			i := r.IntN(len(p[name]))
			orig := p[name][i]
			p[name][i] = orig + eps
			up := lossAt()
			p[name][i] = orig - eps
			down := lossAt()
			p[name][i] = orig
			fd := (up - down) / (2 * eps)
			if d := math.Abs(fd - grad[i]); d > 1e-8+1e-5*math.Abs(fd) || math.IsNaN(grad[i]) {
				t.Errorf("d loss / d %s[%d]: autodiff %.10g, central difference %.10g", name, i, grad[i], fd)
			}
			checked++
		}
	}
	t.Logf("%d coordinates of %d parameters agree with central differences", checked, len(params))
}

// TestGradientsStayFiniteUnderStrongDecay: with dt ≈ 8 and A = −16 every
// step decays by e^−128, so the segment sums above the causal diagonal reach
// +10⁴ and their exponential overflows float32. Adding the −∞ mask before
// the Exp keeps those entries out of the graph; masking after it would turn
// them into inf·0 = NaN in the loss or its gradients.
func TestGradientsStayFiniteUnderStrongDecay(t *testing.T) {
	c, _ := model.Preset("tiny") // Q = 64: long chunks, large segment sums
	const B, L = 1, 100
	g := lossAndGradients(t, "decay", c, B, L)
	s := orttest.Session(t, g)
	p := model.InitParams(c, 1)
	for name, v := range p {
		switch {
		case strings.HasSuffix(name, "dt_bias"):
			fill32(v, 8) // softplus(8) ≈ 8
		case strings.HasSuffix(name, "A_log"):
			fill32(v, float32(math.Log(16)))
		}
	}
	feeds := map[string]*ort.Tensor{}
	for _, ps := range model.ParamShapes(c) {
		feeds[ps.Name] = ort.NewTensor(int64s(ps.Shape), p[ps.Name])
	}
	in, _ := model.StateNames(c)
	for i, sh := range model.StateShapes(c, B) {
		feeds[in[i]] = ort.NewTensor(int64s(sh), make([]float32, size(sh)))
	}
	r := rand.New(rand.NewPCG(13, 14))
	tok, tgt, m := make([]int64, B*L), make([]int64, B*L), make([]float32, B*L)
	for i := range tok {
		tok[i], tgt[i], m[i] = int64(r.IntN(256)), int64(r.IntN(256)), 1
	}
	feeds["ids"], feeds["targets"], feeds["mask"] = ort.NewTensor([]int64{B, L}, tok), ort.NewTensor([]int64{B, L}, tgt), ort.NewTensor([]int64{B, L}, m)
	out := orttest.Run(t, s, feeds)
	for name, v := range out {
		for i, x := range v.Float32() {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("%s[%d] = %v under strong decay", name, i, x)
			}
		}
	}
}

func fill32(v []float32, x float32) {
	for i := range v {
		v[i] = x
	}
}
