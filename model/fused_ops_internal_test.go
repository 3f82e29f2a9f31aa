package model

import (
	"math/rand/v2"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// convProblem is one mixer convolution's inputs in float32, with the weights
// of a loss Σ y⊙wy + Σ next⊙wn, so that both outputs carry a gradient.
type convProblem struct {
	B, L, C, W int
	vals       map[string][]float32
}

var convInputs = []string{"x", "state", "w", "bias"}

func newConvProblem(r *rand.Rand, B, L, C, W int, scale float64) convProblem {
	u := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(scale * (2*r.Float64() - 1))
		}
		return v
	}
	return convProblem{B, L, C, W, map[string][]float32{
		"x": u(B * L * C), "state": u(B * C * W), "w": u(C * W), "bias": u(C),
		"wy": u(B * L * C), "wn": u(B * C * W),
	}}
}

func (p convProblem) shape(name string) []int {
	return map[string][]int{
		"x": {p.B, p.L, p.C}, "state": {p.B, p.C, p.W}, "w": {p.C, p.W}, "bias": {p.C},
		"wy": {p.B, p.L, p.C}, "wn": {p.B, p.C, p.W},
	}[name]
}

// run builds the convolution (fused or standard), the loss and its
// gradients with respect to every input, and runs them.
func (p convProblem) run(t *testing.T, fused bool) map[string][]float32 {
	t.Helper()
	orttest.Init(t)
	g := graph.New("conv")
	in := map[string]*graph.Tensor{}
	feeds := map[string]*ort.Tensor{}
	for name, v := range p.vals {
		in[name] = g.Input(name, graph.Float32, p.shape(name)...)
		dims := make([]int64, 0, 3)
		for _, d := range p.shape(name) {
			dims = append(dims, int64(d))
		}
		feeds[name] = ort.NewTensor(dims, v)
	}
	conv := convSilu
	if fused {
		conv = graph.ConvSilu
	}
	y, next := conv(in["x"], in["state"], in["w"], in["bias"])
	g.Output("y", y)
	g.Output("next", next)
	loss := graph.Add(graph.ReduceSum(graph.Mul(y, in["wy"])), graph.ReduceSum(graph.Mul(next, in["wn"])))
	wrt := make([]*graph.Tensor, len(convInputs))
	for i, name := range convInputs {
		wrt[i] = in[name]
	}
	gs, err := graph.Gradients(loss, wrt)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range convInputs {
		g.Output("d_"+name, gs[i])
	}
	return runFloat32(t, g, feeds)
}

// runFloat32 runs g on two threads and returns every output as float32.
func runFloat32(t *testing.T, g *graph.Graph, feeds map[string]*ort.Tensor) map[string][]float32 {
	t.Helper()
	b, err := g.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewSession(b, ort.SessionOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return float32Outputs(t, s, feeds)
}

// float32Outputs runs s and returns every output as float32.
func float32Outputs(t *testing.T, s *ort.Session, feeds map[string]*ort.Tensor) map[string][]float32 {
	t.Helper()
	out, err := s.Run(feeds)
	if err != nil {
		t.Fatal(err)
	}
	res := map[string][]float32{}
	for name, v := range out {
		res[name] = v.Float32()
	}
	return res
}

// TestFusedConvSiluEqualsStandardGraph checks ConvSilu and ConvSiluGrad
// against the standard-op convolution and its autodiff over random shapes:
// windows shorter than the kernel (the next state then reaches into the
// carried one), one channel block and several with a partial last one,
// every preset's width (width 4, which the kernels write out, also over
// several tiles of steps), and values up to ±8 (silu's saturated ends). Under
// AddressSanitizer it also checks the kernels' memory accesses.
func TestFusedConvSiluEqualsStandardGraph(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for i := range 26 {
		p := newConvProblem(r, 1+r.IntN(3), []int{1, 2, 3, 5, 17, 70}[r.IntN(6)],
			[]int{1, 7, 64, 65, 130, 640}[r.IntN(6)], 1+r.IntN(4), []float64{0.5, 2, 8}[r.IntN(3)])
		if i >= 24 { // width 4 (the kernels' own path) over three tiles of 64 steps and a partial one
			p = newConvProblem(r, 2, []int{150, 3}[i-24], 65, 4, 2)
		}
		want, got := p.run(t, false), p.run(t, true)
		for _, name := range []string{"y", "next", "d_x", "d_state", "d_w", "d_bias"} {
			if e := relErr(got[name], want[name]); !finite(got[name]) || e > 2e-5 {
				t.Errorf("B=%d L=%d C=%d W=%d: fused %s differs from the standard graph's by %.3g", p.B, p.L, p.C, p.W, name, e)
			}
		}
	}
}

// TestFusedRMSNormEqualsStandardGraph checks RMSNorm and RMSNormGrad
// against normRMS and its autodiff over random shapes (row counts that
// leave a task partial, widths from 1, inputs from tiny to large).
func TestFusedRMSNormEqualsStandardGraph(t *testing.T) {
	orttest.Init(t)
	r := rand.New(rand.NewPCG(43, 44))
	for range 16 {
		lead := []int{1 + r.IntN(3), []int{1, 5, 64, 65, 200}[r.IntN(5)]}
		D := []int{1, 3, 16, 256, 513}[r.IntN(5)]
		scale := []float64{1e-3, 1, 30}[r.IntN(3)]
		vals := map[string][]float32{}
		rows := lead[0] * lead[1]
		for name, n := range map[string]int{"x": rows * D, "w": D, "wy": rows * D} {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(scale * (2*r.Float64() - 1))
			}
			vals[name] = v
		}
		run := func(fused bool) map[string][]float32 {
			g := graph.New("norm")
			x := g.Input("x", graph.Float32, lead[0], lead[1], D)
			w := g.Input("w", graph.Float32, D)
			wy := g.Input("wy", graph.Float32, lead[0], lead[1], D)
			var y *graph.Tensor
			if fused {
				y = graph.RMSNorm(x, w, normEps)
			} else {
				y = normRMS(x, w)
			}
			g.Output("y", y)
			gs, err := graph.Gradients(graph.ReduceSum(graph.Mul(y, wy)), []*graph.Tensor{x, w})
			if err != nil {
				t.Fatal(err)
			}
			g.Output("d_x", gs[0])
			g.Output("d_w", gs[1])
			dims := []int64{int64(lead[0]), int64(lead[1]), int64(D)}
			return runFloat32(t, g, map[string]*ort.Tensor{"x": ort.NewTensor(dims, vals["x"]),
				"w": ort.NewTensor([]int64{int64(D)}, vals["w"]), "wy": ort.NewTensor(dims, vals["wy"])})
		}
		want, got := run(false), run(true)
		for _, name := range []string{"y", "d_x", "d_w"} {
			if e := relErr(got[name], want[name]); !finite(got[name]) || e > 1e-4 {
				t.Errorf("rows %v D=%d scale %g: fused %s differs from the standard graph's by %.3g", lead, D, scale, name, e)
			}
		}
	}
}

// TestFusedGatedRMSNormEqualsStandardGraph checks GatedRMSNorm and
// GatedRMSNormGrad against the standard-op skip, gate and norm (normRMS of
// (y + D·x) ⊙ silu(z)) and their autodiff over random shapes: row counts
// that leave a task partial, one head or several, head widths from 1, y and x
// from tiny to large, and gates up to ±8 (silu's saturated ends; beyond about
// ±18 ONNX Runtime's Sigmoid, which the standard graph uses, stops following
// the true σ).
func TestFusedGatedRMSNormEqualsStandardGraph(t *testing.T) {
	orttest.Init(t)
	r := rand.New(rand.NewPCG(45, 46))
	for range 16 {
		R0, R1 := 1+r.IntN(3), []int{1, 5, 64, 65, 200}[r.IntN(5)]
		H, P := []int{1, 2, 8}[r.IntN(3)], []int{1, 3, 16, 64}[r.IntN(4)]
		scale, zscale := []float64{1e-3, 1, 30}[r.IntN(3)], []float64{0.5, 2, 8}[r.IntN(3)]
		n := R0 * R1 * H * P
		vals := map[string][]float32{}
		for name, size := range map[string]int{"y": n, "x": n, "skip": H, "z": n, "w": H * P, "wo": n} {
			s := map[string]float64{"y": scale, "x": scale, "z": zscale}[name]
			if s == 0 {
				s = 1
			}
			v := make([]float32, size)
			for i := range v {
				v[i] = float32(s * (2*r.Float64() - 1))
			}
			vals[name] = v
		}
		heads := []int64{int64(R0), int64(R1), int64(H), int64(P)}
		flat := []int64{int64(R0), int64(R1), int64(H * P)}
		feeds := map[string]*ort.Tensor{"y": ort.NewTensor(heads, vals["y"]), "x": ort.NewTensor(heads, vals["x"]),
			"skip": ort.NewTensor([]int64{int64(H)}, vals["skip"]), "z": ort.NewTensor(flat, vals["z"]),
			"w": ort.NewTensor([]int64{int64(H * P)}, vals["w"]), "wo": ort.NewTensor(flat, vals["wo"])}
		run := func(fused bool) map[string][]float32 {
			g := graph.New("gnorm")
			y := g.Input("y", graph.Float32, R0, R1, H, P)
			x := g.Input("x", graph.Float32, R0, R1, H, P)
			skip := g.Input("skip", graph.Float32, H)
			z := g.Input("z", graph.Float32, R0, R1, H*P)
			w := g.Input("w", graph.Float32, H*P)
			wo := g.Input("wo", graph.Float32, R0, R1, H*P)
			var out *graph.Tensor
			if fused {
				out = graph.GatedRMSNorm(graph.Reshape(y, R0, R1, H*P), graph.Reshape(x, R0, R1, H*P), skip, z, w, normEps)
			} else {
				q := graph.Reshape(graph.Add(y, graph.Mul(x, graph.Unsqueeze(skip, 1))), R0, R1, H*P)
				out = normRMS(graph.Mul(q, graph.Silu(z)), w)
			}
			g.Output("out", out)
			gs, err := graph.Gradients(graph.ReduceSum(graph.Mul(out, wo)), []*graph.Tensor{y, x, skip, z, w})
			if err != nil {
				t.Fatal(err)
			}
			for i, name := range []string{"d_y", "d_x", "d_skip", "d_z", "d_w"} {
				g.Output(name, gs[i])
			}
			return runFloat32(t, g, feeds)
		}
		want, got := run(false), run(true)
		for _, name := range []string{"out", "d_y", "d_x", "d_skip", "d_z", "d_w"} {
			if e := relErr(got[name], want[name]); !finite(got[name]) || e > 1e-4 {
				t.Errorf("rows %d×%d H=%d P=%d scales %g, %g: fused %s differs from the standard graph's by %.3g", R0, R1, H, P, scale, zscale, name, e)
			}
		}
	}
}

// TestFusedSoftmaxCrossEntropyEqualsStandardGraph checks SoftmaxCrossEntropy
// and its gradient against the standard loss (LogSoftmax picked by a one-hot
// product) and its autodiff over random shapes: row counts that leave a task
// partial, vocabularies from 1, logits from tiny to ±30, and targets that
// fall outside the vocabulary (no loss, no gradient in both).
func TestFusedSoftmaxCrossEntropyEqualsStandardGraph(t *testing.T) {
	orttest.Init(t)
	r := rand.New(rand.NewPCG(47, 48))
	for range 16 {
		B, L := 1+r.IntN(3), []int{1, 5, 64, 65, 200}[r.IntN(5)]
		V := []int{1, 7, 16, 272, 301}[r.IntN(5)]
		scale := []float64{1e-3, 1, 30}[r.IntN(3)]
		logits, wy, targets := make([]float32, B*L*V), make([]float32, B*L), make([]int64, B*L)
		for i := range logits {
			logits[i] = float32(scale * (2*r.Float64() - 1))
		}
		for i := range wy {
			wy[i] = float32(2*r.Float64() - 1)
			targets[i] = int64(r.IntN(V + 2)) // V and V+1 are outside
		}
		feeds := map[string]*ort.Tensor{"logits": ort.NewTensor([]int64{int64(B), int64(L), int64(V)}, logits),
			"wy": ort.NewTensor([]int64{int64(B), int64(L)}, wy)}
		run := func(fused bool) map[string][]float32 {
			g := graph.New("xent")
			x := g.Input("logits", graph.Float32, B, L, V)
			w := g.Input("wy", graph.Float32, B, L)
			nll := tokenNLL(x, g.Const(targets, B, L), fused)
			g.Output("nll", nll)
			gs, err := graph.Gradients(graph.ReduceSum(graph.Mul(nll, w)), []*graph.Tensor{x})
			if err != nil {
				t.Fatal(err)
			}
			g.Output("d_logits", gs[0])
			return runFloat32(t, g, feeds)
		}
		want, got := run(false), run(true)
		for _, name := range []string{"nll", "d_logits"} {
			if e := relErr(got[name], want[name]); !finite(got[name]) || e > 1e-5 {
				t.Errorf("B=%d L=%d V=%d scale %g: fused %s differs from the standard graph's by %.3g", B, L, V, scale, name, e)
			}
		}
	}
}
