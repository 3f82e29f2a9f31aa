package model_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/internal/testutil"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

const tol = 1e-9 // float64 through ONNX Runtime against the Go reference

func TestParamCountMatchesClosedForm(t *testing.T) {
	for _, name := range model.Presets() {
		c, _ := model.Preset(name)
		perLayer := c.DModel + c.InProjWidth()*c.DModel + c.ConvDim()*c.DConv + c.ConvDim() + 3*c.Heads() + c.DInner() + c.DModel*c.DInner()
		want := int64(c.VocabSize*c.DModel + c.Layers*perLayer + c.DModel)
		if got := model.ParamCount(c); got != want {
			t.Errorf("%s: ParamCount %d, closed form %d", name, got, want)
		}
	}
	c, _ := model.Preset("paper")
	if n := model.ParamCount(c); n < 88e6 || n > 92e6 {
		t.Errorf("paper preset has %d parameters, NetSSM's has about 90 M", n)
	}
}

func TestPresetsMatchTorchReference(t *testing.T) {
	// D, layers, P, N, Q as in the PyTorch reference benchmark's PRESETS.
	want := map[string][5]int{"tiny": {64, 2, 16, 16, 64}, "small": {256, 4, 32, 64, 128}, "base": {512, 8, 64, 64, 256}, "paper": {768, 24, 64, 128, 256}}
	for name, w := range want {
		c, err := model.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		got := [5]int{c.DModel, c.Layers, c.HeadDim, c.DState, c.ChunkSize}
		if got != w || c.Expand != 2 || c.DConv != 4 || c.NGroups != 1 || c.VocabSize != 272 {
			t.Errorf("%s: %+v, want D/layers/P/N/Q %v, expand 2, W 4, V 272", name, c, w)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := model.Preset("huge"); err == nil || !strings.Contains(err.Error(), "tiny") {
		t.Errorf("unknown preset: %v, want an error listing the presets", err)
	}
}

func TestVocabIsPaddedToMultipleOf16(t *testing.T) {
	for n, want := range map[int]int{256: 256, 257: 272, 272: 272, 330: 336} {
		if got := model.PadVocab(n); got != want {
			t.Errorf("PadVocab(%d) = %d, want %d", n, got, want)
		}
	}
	c, _ := model.Preset("tiny")
	c.VocabSize = 270
	if err := c.Validate(); err == nil {
		t.Error("vocab 270 validated")
	}
}

func TestPacketFeatureConfigsAreChecked(t *testing.T) {
	base, _ := model.Preset("tiny")
	base.PacketToken = 257
	for _, f := range []struct {
		k, j, h int
		ok      bool
	}{
		{128, 2, 256, true}, {0, 1, 2, true}, {1, 0, 0, false}, {0, -1, 0, false}, {0, model.MaxPrevPackets + 1, 64, false},
		{0, 2, 1, false}, {0, 2, model.MaxPacketHistory + 1, false}, {0, 0, 64, false},
	} {
		c := base
		c.PacketPositions, c.PrevPackets, c.PacketHistory = f.k, f.j, f.h
		if err := c.Validate(); (err == nil) != f.ok {
			t.Errorf("K %d, J %d, history %d: Validate() = %v, want ok %v", f.k, f.j, f.h, err, f.ok)
		}
	}
	c := base
	c.PrevPackets, c.PacketHistory, c.PacketToken = 2, 64, 400
	if err := c.Validate(); err == nil {
		t.Error("a <pkt> id outside the vocabulary validated")
	}
}

func TestInitFollowsNote(t *testing.T) {
	c, _ := model.Preset("small")
	c.PacketPositions, c.PacketToken = 128, 257
	c.PrevPackets, c.PacketHistory = 2, 256
	p := model.InitParams64(c, 7)
	if err := model.CheckParams64(c, p); err != nil {
		t.Fatal(err)
	}
	inRange := func(name string, lo, hi float64, f func(float64) float64) {
		for _, v := range p[name] {
			if x := f(v); x < lo || x > hi {
				t.Fatalf("%s: value %g (→ %g) outside [%g, %g]", name, v, x, lo, hi)
			}
		}
	}
	id := func(x float64) float64 { return x }
	softplus := func(x float64) float64 { return math.Log1p(math.Exp(x)) }
	m := "layers.1.mixer."
	inRange(m+"in_proj.weight", -1/math.Sqrt(256), 1/math.Sqrt(256), id)
	inRange(m+"conv1d.weight", -0.5, 0.5, id)
	inRange(m+"conv1d.bias", -0.5, 0.5, id)
	inRange(m+"out_proj.weight", -1/math.Sqrt(512), 1/math.Sqrt(512), id)
	inRange(m+"A_log", 0, math.Log(16), id)
	inRange(m+"dt_bias", 1e-3*(1-1e-9), 0.1*(1+1e-9), softplus) // softplus(dt_bias) = dt
	inRange(m+"D", 1, 1, id)
	inRange(m+"norm.weight", 1, 1, id)
	inRange("layers.0.norm.weight", 1, 1, id)
	inRange("norm_f.weight", 1, 1, id)
	for _, name := range []string{"embedding.weight", model.PacketPositionParam, model.CopyBiasParam, model.CopyGateParam} {
		e := p[name]
		ss := 0.0
		for _, v := range e {
			ss += v * v
		}
		if std := math.Sqrt(ss / float64(len(e))); math.Abs(std-0.02) > 0.001 {
			t.Errorf("%s std %g, want 0.02", name, std)
		}
	}
	again, other := model.InitParams64(c, 7), model.InitParams64(c, 8)
	if testutil.MaxRelErr(again[m+"in_proj.weight"], p[m+"in_proj.weight"]) != 0 {
		t.Error("same seed, different values")
	}
	if testutil.MaxRelErr(other[m+"in_proj.weight"], p[m+"in_proj.weight"]) == 0 {
		t.Error("different seeds, same values")
	}
}

// forward runs the forward graph (float64, parameters fed) on ids from st.
func forward(t *testing.T, c model.Config, p map[string][]float64, ids [][]int64, st model.States64) ([]float64, model.States64) {
	t.Helper()
	B, L := len(ids), len(ids[0])
	g, err := model.NewForwardGraph(c, B, L, graph.Float64)
	if err != nil {
		t.Fatal(err)
	}
	s := orttest.Session(t, g)
	feeds := paramFeeds(c, p, nil)
	stateFeeds(c, B, st, feeds)
	feeds[model.InIDs] = ort.NewTensor([]int64{int64(B), int64(L)}, flatIDs(ids))
	out := orttest.Run(t, s, feeds)
	return out[model.OutLogits].Float64(), statesOut(c, out)
}

func TestChunkedSSDEqualsSequentialReference(t *testing.T) {
	for name, c := range testConfigs(t) {
		t.Run(name, func(t *testing.T) { testChunkedSSDEqualsSequentialReference(t, c) })
	}
}

func testChunkedSSDEqualsSequentialReference(t *testing.T, c model.Config) {
	r := rand.New(rand.NewPCG(1, 2))
	p := model.InitParams64(c, 1)
	cases := []struct {
		name    string
		L, Q    int
		initial bool
	}{
		{"zero state, L multiple of Q", 24, 8, false},
		{"zero state, L not a multiple of Q", 21, 8, false},
		{"initial state, L not a multiple of Q", 21, 8, true},
		{"initial state, L shorter than Q and W", 3, 8, true},
		{"initial state, one chunk of the tiny preset", 37, 64, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c
			c.ChunkSize = tc.Q
			ids := randomIDs(c, 2, tc.L, r)
			st := model.ZeroStates64(c, 2)
			if tc.initial {
				st = randomStates(c, 2, r)
			}
			want, wantSt, err := model.ReferenceForward(c, p, flatIDs(ids), 2, tc.L, st)
			if err != nil {
				t.Fatal(err)
			}
			got, gotSt := forward(t, c, p, ids, st)
			if e := testutil.MaxRelErr(got, want); e > tol {
				t.Errorf("logits differ from the sequential reference by %.3g", e)
			}
			if e := statesErr(gotSt, wantSt); e > tol {
				t.Errorf("final states differ from the sequential reference by %.3g", e)
			}
		})
	}
}

func TestStepByStepEqualsParallelLogits(t *testing.T) {
	for name, c := range testConfigs(t) {
		t.Run(name, func(t *testing.T) { testStepByStepEqualsParallelLogits(t, c) })
	}
}

func testStepByStepEqualsParallelLogits(t *testing.T, c model.Config) {
	r := rand.New(rand.NewPCG(3, 4))
	p := model.InitParams64(c, 2)
	const B, L = 2, 19
	ids := randomIDs(c, B, L, r)
	st0 := randomStates(c, B, r)
	parallel, parSt := forward(t, c, p, ids, st0)

	g, err := model.NewStepGraph(c, B, graph.Float64)
	if err != nil {
		t.Fatal(err)
	}
	s := orttest.Session(t, g)
	st := st0
	V := c.VocabSize
	for pos := range L {
		feeds := paramFeeds(c, p, nil)
		stateFeeds(c, B, st, feeds)
		feeds[model.InIDs] = ort.NewTensor([]int64{B}, []int64{ids[0][pos], ids[1][pos]})
		out := orttest.Run(t, s, feeds)
		logits := out[model.OutLogits].Float64()
		for b := range B {
			want := parallel[(b*L+pos)*V : (b*L+pos+1)*V]
			if e := testutil.MaxRelErr(logits[b*V:(b+1)*V], want); e > tol {
				t.Fatalf("position %d, sequence %d: step logits differ from the parallel forward by %.3g", pos, b, e)
			}
		}
		st = statesOut(c, out)
	}
	if e := statesErr(st, parSt); e > tol {
		t.Errorf("states after %d steps differ from the parallel forward's by %.3g", L, e)
	}
}

func TestPrefillOfConcatenationEqualsPrefillContinued(t *testing.T) {
	for name, c := range testConfigs(t) {
		t.Run(name, func(t *testing.T) { testPrefillOfConcatenationEqualsPrefillContinued(t, c) })
	}
}

func testPrefillOfConcatenationEqualsPrefillContinued(t *testing.T, c model.Config) {
	r := rand.New(rand.NewPCG(5, 6))
	p := model.InitParams64(c, 3)
	const B, La, Lb = 2, 11, 14
	ids := randomIDs(c, B, La+Lb, r)
	prefill := func(ids [][]int64, st model.States64) ([]float64, model.States64) {
		B, L := len(ids), len(ids[0])
		g, err := model.NewPrefillGraph(c, B, L, graph.Float64)
		if err != nil {
			t.Fatal(err)
		}
		feeds := paramFeeds(c, p, nil)
		stateFeeds(c, B, st, feeds)
		feeds[model.InIDs] = ort.NewTensor([]int64{int64(B), int64(L)}, flatIDs(ids))
		out := orttest.Run(t, orttest.Session(t, g), feeds)
		return out[model.OutLogits].Float64(), statesOut(c, out)
	}
	split := func(lo, hi int) [][]int64 {
		var s [][]int64
		for _, seq := range ids {
			s = append(s, seq[lo:hi])
		}
		return s
	}
	zero := model.ZeroStates64(c, B)
	whole, wholeSt := prefill(ids, zero)
	_, aSt := prefill(split(0, La), zero)
	cont, contSt := prefill(split(La, La+Lb), aSt)
	if e := testutil.MaxRelErr(cont, whole); e > tol {
		t.Errorf("last logits: prefill(b) from prefill(a)'s state differs from prefill(a++b) by %.3g", e)
	}
	if e := statesErr(contSt, wholeSt); e > tol {
		t.Errorf("states: prefill(b) from prefill(a)'s state differs from prefill(a++b) by %.3g", e)
	}
	// The invariant must be able to fail: a fresh prefill(b) differs.
	fresh, _ := prefill(split(La, La+Lb), zero)
	if testutil.MaxRelErr(fresh, whole) < 1e-6 {
		t.Error("prefill(b) from zero state equals prefill(a++b): the state carries nothing")
	}
}

// TestCopyLogitsBoostTheNextTokensCounterpart pins what the copy logits read,
// on a hand-worked trace: at each position the boost of the j-th previous
// packet goes to the token that followed the same offset there (the
// counterpart of the token to predict), the <pkt> where that packet ended,
// nothing where it is shorter. All weights are zero but copy.bias (j+1 for
// the j-th packet back), so the logits are the boosts alone.
func TestCopyLogitsBoostTheNextTokensCounterpart(t *testing.T) {
	c := testConfig(t)
	const P = 257
	c.PacketToken, c.PrevPackets, c.PacketHistory = P, 2, 12
	p := map[string][]float64{}
	for _, s := range model.ParamShapes(c) {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		p[s.Name] = make([]float64, n)
	}
	for j := range c.PrevPackets {
		for off := range c.PacketHistory {
			p[model.CopyBiasParam][j*c.PacketHistory+off] = float64(j + 1)
		}
	}
	const a, b, cc, d, e, f, g, h = 1, 2, 3, 4, 5, 6, 7, 8
	ids := []int64{P, a, b, cc, P, d, e, P, f, g, h}
	want := []map[int64]float64{
		{}, {}, {}, {}, // no packet before the first
		{a: 1}, // <pkt>: the previous packet's first token
		{b: 1}, {cc: 1},
		{d: 1, a: 2},  // third <pkt>: both packets back
		{e: 1, b: 2},  //
		{P: 1, cc: 2}, // the previous packet ended after its offset 2
		{P: 2},        // the previous packet is too short; two back ended here
	}
	logits, _, err := model.ReferenceForward(c, p, ids, 1, len(ids), model.ZeroStates64(c, 1))
	if err != nil {
		t.Fatal(err)
	}
	V := c.VocabSize
	for i, w := range want {
		for v := range V {
			if got := logits[i*V+v]; got != w[int64(v)] {
				t.Errorf("position %d (token %d): logit of %d is %g, want %g", i, ids[i], v, got, w[int64(v)])
			}
		}
	}
}
