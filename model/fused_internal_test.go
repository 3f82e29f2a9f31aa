package model

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// ssdProblem is one layer's SSD scan inputs in float32, with the weights of
// a loss Σ y⊙wy + Σ final⊙wf whose gradients the backward checks compare.
type ssdProblem struct {
	B, L, H, P, N, Q int
	vals             map[string][]float32
}

func newSSDProblem(r *rand.Rand, B, L, H, P, N, Q int) ssdProblem {
	u := func(n int, lo, hi float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(lo + (hi-lo)*r.Float64())
		}
		return v
	}
	return ssdProblem{B, L, H, P, N, Q, map[string][]float32{
		"x": u(B*L*H*P, -1, 1), "dt": u(B*L*H, 0.001, 0.3), "A": u(H, -8, -1),
		"bm": u(B*L*N, -1, 1), "cm": u(B*L*N, -1, 1), "h0": u(B*H*P*N, -1, 1),
		"wy": u(B*L*H*P, -1, 1), "wf": u(B*H*P*N, -1, 1),
	}}
}

func (p ssdProblem) shapes() map[string][]int {
	return map[string][]int{
		"x": {p.B, p.L, p.H, p.P}, "dt": {p.B, p.L, p.H}, "A": {p.H}, "bm": {p.B, p.L, p.N}, "cm": {p.B, p.L, p.N},
		"h0": {p.B, p.H, p.P, p.N}, "wy": {p.B, p.L, p.H, p.P}, "wf": {p.B, p.H, p.P, p.N},
	}
}

var ssdInputs = []string{"x", "dt", "A", "bm", "cm", "h0"}

// run builds the scan (fused or standard) with the loss and, with grads,
// its gradients with respect to every input, and runs it in ONNX Runtime.
func (p ssdProblem) run(t *testing.T, fused, grads bool) map[string][]float32 {
	t.Helper()
	s, feeds := p.session(t, fused, grads, 2)
	defer s.Close()
	return float32Outputs(t, s, feeds)
}

// session builds the graph of run and its feeds.
func (p ssdProblem) session(t testing.TB, fused, grads bool, threads int) (*ort.Session, map[string]*ort.Tensor) {
	t.Helper()
	orttest.Init(t)
	g := graph.New("ssd")
	in := map[string]*graph.Tensor{}
	for _, name := range append(ssdInputs, "wy", "wf") {
		in[name] = g.Input(name, graph.Float32, p.shapes()[name]...)
	}
	var y, final *graph.Tensor
	if fused {
		y, final = graph.SSDScan(in["x"], in["dt"], in["A"], in["bm"], in["cm"], in["h0"], p.Q)
	} else {
		y, final = ssd(in["x"], in["dt"], in["A"], in["bm"], in["cm"], in["h0"], p.Q)
	}
	g.Output("y", y)
	g.Output("final", final)
	if grads {
		loss := graph.Add(graph.ReduceSum(graph.Mul(y, in["wy"])), graph.ReduceSum(graph.Mul(final, in["wf"])))
		var wrt []*graph.Tensor
		for _, name := range ssdInputs {
			wrt = append(wrt, in[name])
		}
		gs, err := graph.Gradients(loss, wrt)
		if err != nil {
			t.Fatal(err)
		}
		for i, name := range ssdInputs {
			g.Output("d_"+name, gs[i])
		}
	}
	b, err := g.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewSession(b, ort.SessionOptions{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	feeds := map[string]*ort.Tensor{}
	for name, v := range p.vals {
		shape := p.shapes()[name]
		dims := make([]int64, len(shape))
		for i, d := range shape {
			dims[i] = int64(d)
		}
		feeds[name] = ort.NewTensor(dims, v)
	}
	return s, feeds
}

// relErr is max |a−b| / max(1, max |b|), infinite on a NaN or a length
// mismatch.
func relErr(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	scale, worst := 1.0, 0.0
	for _, v := range b {
		scale = max(scale, math.Abs(float64(v)))
	}
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		worst = max(worst, d)
	}
	return worst / scale
}

// presetSSDShapes are every preset's layer shapes, at a batch of 2 and a
// length of two chunks and 3 (the last chunk padded), and one length under
// a chunk.
func presetSSDShapes(t *testing.T) []ssdProblem {
	r := rand.New(rand.NewPCG(21, 22))
	var ps []ssdProblem
	for _, name := range Presets() {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		Q := c.ChunkSize
		ps = append(ps, newSSDProblem(r, 2, 2*Q+3, c.Heads(), c.HeadDim, c.DState, Q))
		ps = append(ps, newSSDProblem(r, 1, Q/2+1, c.Heads(), c.HeadDim, c.DState, Q))
	}
	return ps
}

func TestFusedSSDScanEqualsStandardGraph(t *testing.T) {
	for _, p := range presetSSDShapes(t) {
		t.Run(fmt.Sprintf("B%d L%d H%d P%d N%d Q%d", p.B, p.L, p.H, p.P, p.N, p.Q), func(t *testing.T) {
			fused, std := p.run(t, true, false), p.run(t, false, false)
			for _, out := range []string{"y", "final"} {
				if e := relErr(fused[out], std[out]); e > 1e-5 {
					t.Errorf("fused %s differs from the standard graph's by %.3g", out, e)
				}
			}
		})
	}
}

func TestFusedSSDScanGradEqualsAutodiffOfStandardGraph(t *testing.T) {
	for _, p := range presetSSDShapes(t) {
		if p.H*p.P*p.N > 32*64*64 && testing.Short() {
			continue
		}
		t.Run(fmt.Sprintf("B%d L%d H%d P%d N%d Q%d", p.B, p.L, p.H, p.P, p.N, p.Q), func(t *testing.T) {
			fused, std := p.run(t, true, true), p.run(t, false, true)
			for _, name := range ssdInputs {
				if e := relErr(fused["d_"+name], std["d_"+name]); e > 1e-4 {
					t.Errorf("fused d%s differs from the standard graph's by %.3g", name, e)
				}
			}
		})
	}
}

// BenchmarkSSDScan times one layer's SSD scan with its gradients (the
// loss's backward) at the small preset's train shape (B=4, L=2048), fused
// and in standard ops, on one thread.
//
//	go test -run '^$' -bench SSDScan ./model
func BenchmarkSSDScan(b *testing.B) {
	c, _ := Preset("small")
	p := newSSDProblem(rand.New(rand.NewPCG(1, 2)), 4, 2048, c.Heads(), c.HeadDim, c.DState, c.ChunkSize)
	for _, fused := range []bool{true, false} {
		name := map[bool]string{true: "fused", false: "standard"}[fused]
		b.Run(name, func(b *testing.B) {
			s, feeds := p.session(b, fused, true, 1)
			defer s.Close()
			if _, err := s.Run(feeds); err != nil { // warm-up
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := s.Run(feeds); err != nil {
					b.Fatal(err)
				}
			}
			// The process's CPU time: steadier than wall time on a shared machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the user + system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// finite reports whether every value is a finite number.
func finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

// TestFusedSSDSurvivesRandomShapes is a property test of SSDScan and
// SSDScanGrad over random shapes (any chunk length, lengths that end inside
// a chunk or under one) and random scales (decays from none to e^−200 per
// step): wherever the standard graph's outputs and gradients are finite,
// the fused ones are finite and equal. Run under AddressSanitizer
// (go test -asan ./model) it also checks the kernels' memory accesses.
func TestFusedSSDSurvivesRandomShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	cases := 40
	if testing.Short() {
		cases = 10
	}
	for i := range cases {
		B, L, H, P, N, Q := 1+r.IntN(3), 1+r.IntN(150), 1+r.IntN(4), 1+r.IntN(20), 1+r.IntN(20), 1+r.IntN(70)
		p := newSSDProblem(r, B, L, H, P, N, Q)
		dtScale, xScale := math.Pow(10, -3+4*r.Float64()), math.Pow(10, -2+3*r.Float64())
		for k, v := range p.vals {
			for j := range v {
				switch k {
				case "dt":
					v[j] *= float32(dtScale)
				case "x", "bm", "cm":
					v[j] *= float32(xScale)
				}
			}
		}
		name := fmt.Sprintf("%d: B%d L%d H%d P%d N%d Q%d dt×%.3g x×%.3g", i, B, L, H, P, N, Q, dtScale, xScale)
		fused, std := p.run(t, true, true), p.run(t, false, true)
		for _, out := range []string{"y", "final", "d_x", "d_dt", "d_A", "d_bm", "d_cm", "d_h0"} {
			if !finite(std[out]) {
				continue
			}
			if !finite(fused[out]) {
				t.Errorf("%s: fused %s has NaN or Inf where the standard graph's is finite", name, out)
			} else if e := relErr(fused[out], std[out]); e > 1e-3 {
				t.Errorf("%s: fused %s differs from the standard graph's by %.3g", name, out, e)
			}
		}
	}
}

// TestFusedStepSurvivesRandomShapes is the property test of the step
// graph's fused ops: step graphs of random configurations, fused and
// standard, give the same logits and states from random states, at batches
// that run BlockStep (every other configuration; widths that are not a
// multiple of its panels or of its partial sums included; its mixer step in
// three passes and, at 8 rows, per row) and at larger ones, which run
// MixerStep between ONNX Runtime's products.
func TestFusedStepSurvivesRandomShapes(t *testing.T) {
	orttest.Init(t)
	r := rand.New(rand.NewPCG(43, 44))
	for i := range 12 {
		c := Config{DModel: 1 + r.IntN(40), Layers: 1 + r.IntN(2), DState: 1 + r.IntN(24), Expand: 1 + r.IntN(2),
			DConv: 1 + r.IntN(5), ChunkSize: 8, VocabSize: 272, NGroups: 1, HeadDim: 1}
		for _, h := range []int{4, 2} {
			if c.DInner()%h == 0 && r.IntN(2) == 0 {
				c.HeadDim = h
				break
			}
		}
		B := 1 + (i/2*3)%BlockStepMaxBatch // BlockStep: 1, 4, 7, 2, 5, 8 rows (its products take rows 8, 4 and 1 at a time)
		if i%2 == 1 {
			B = BlockStepMaxBatch + 1 + r.IntN(4) // MixerStep
		}
		name := fmt.Sprintf("%d: %s B=%d", i, c, B)
		params := Values(InitParams(c, uint64(i)))
		feeds := map[string]*ort.Tensor{}
		ids := make([]int64, B)
		for b := range ids {
			ids[b] = int64(r.IntN(c.VocabSize))
		}
		feeds[InIDs] = ort.NewTensor([]int64{int64(B)}, ids)
		in, out := StateNames(c)
		for k, shape := range StateShapes(c, B) {
			n, dims := 1, make([]int64, len(shape))
			for j, d := range shape {
				n, dims[j] = n*d, int64(d)
			}
			v := make([]float32, n)
			for j := range v {
				v[j] = float32(4 * (r.Float64() - 0.5))
			}
			feeds[in[k]] = ort.NewTensor(dims, v)
		}
		results := map[string]map[string][]float32{}
		for _, kernels := range []string{KernelsFused, KernelsStandard} {
			c.Kernels = kernels
			g, err := NewStepGraph(c, B, graph.Float32)
			if err != nil {
				t.Fatal(err)
			}
			b, err := g.Serialize(graph.Initializers(params))
			if err != nil {
				t.Fatal(err)
			}
			if want := kernels == KernelsFused && B <= BlockStepMaxBatch; bytes.Contains(b, []byte("BlockStep")) != want {
				t.Fatalf("%s, %s kernels: the step graph has BlockStep nodes: %v, want %v", name, kernels, !want, want)
			}
			s, err := ort.NewSession(b, ort.SessionOptions{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Run(feeds)
			s.Close()
			if err != nil {
				t.Fatalf("%s, %s kernels: %v", name, kernels, err)
			}
			results[kernels] = map[string][]float32{}
			for k, v := range res {
				results[kernels][k] = v.Float32()
			}
		}
		for _, k := range append([]string{OutLogits}, out...) {
			f, s := results[KernelsFused][k], results[KernelsStandard][k]
			if finite(s) && !finite(f) {
				t.Errorf("%s: fused %s has NaN or Inf where the standard graph's is finite", name, k)
			} else if e := relErr(f, s); finite(s) && e > 1e-4 {
				t.Errorf("%s: fused %s differs from the standard graph's by %.3g", name, k, e)
			}
		}
	}
}
