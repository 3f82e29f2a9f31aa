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

// fusedTol bounds the float32 fused graphs' distance to the float64
// reference (max |a−b| / max(1, |b|)), as for the standard float32 graphs.
const fusedTol = 1e-4

// fusedConfigs are testConfigs with the fused kernels.
func fusedConfigs(t *testing.T) map[string]model.Config {
	cs := testConfigs(t)
	for name, c := range cs {
		c.Kernels = model.KernelsFused
		cs[name] = c
	}
	return cs
}

// serialized builds a float32 graph with the parameters as initializers and
// checks that it uses the fused ops iff the config asks for them.
func serialized(t *testing.T, c model.Config, g *graph.Graph, p map[string][]float64) []byte {
	t.Helper()
	b, err := g.Serialize(graph.Initializers(model.Values(toF32s(p))))
	if err != nil {
		t.Fatal(err)
	}
	if uses := strings.Contains(string(b), graph.FusedDomain); uses != c.Fused() {
		t.Fatalf("%s graph: uses the fused domain = %v with kernels %q", g.Name(), uses, c.Kernels)
	}
	return b
}

func toF32s(p map[string][]float64) map[string][]float32 {
	o := map[string][]float32{}
	for k, v := range p {
		o[k] = toF32(v)
	}
	return o
}

// runF32 runs a float32 graph from float64 states.
func runF32(t *testing.T, c model.Config, b []byte, B int, ids []int64, idShape []int64, st model.States64) ([]float64, model.States64) {
	t.Helper()
	s := orttest.SessionBytes(t, b)
	feeds := map[string]*ort.Tensor{model.InIDs: ort.NewTensor(idShape, ids)}
	in, _ := model.StateNames(c)
	shapes := model.StateShapes(c, B)
	for i, v := range st.Flat() {
		feeds[in[i]] = ort.NewTensor(int64s(shapes[i]), toF32(v))
	}
	res := orttest.Run(t, s, feeds)
	next := statesOutAs(c, res, func(t *ort.Tensor) []float64 { return toF64(t.Float32()) })
	return toF64(res[model.OutLogits].Float32()), next
}

func TestFusedForwardTracksFloat64Reference(t *testing.T) {
	for name, c := range fusedConfigs(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(31, 32))
			p := model.InitParams64(c, 7)
			const B, L = 2, 3*8 + 5 // several chunks of 8, the last one padded
			ids := randomIDs(c, B, L, r)
			st := randomStates(c, B, r)
			want, wantSt, err := model.ReferenceForward(c, p, flatIDs(ids), B, L, st)
			if err != nil {
				t.Fatal(err)
			}
			g, err := model.NewForwardGraph(c, B, L, graph.Float32)
			if err != nil {
				t.Fatal(err)
			}
			got, gotSt := runF32(t, c, serialized(t, c, g, p), B, flatIDs(ids), []int64{B, L}, st)
			if e := testutil.MaxRelErr(got, want); e > fusedTol {
				t.Errorf("fused logits differ from the float64 reference by %.3g", e)
			}
			if e := statesErr(gotSt, wantSt); e > fusedTol {
				t.Errorf("fused final states differ from the float64 reference by %.3g", e)
			}
		})
	}
}

func TestFusedStepByStepEqualsParallelLogits(t *testing.T) {
	for name, c := range fusedConfigs(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(33, 34))
			p := model.InitParams64(c, 8)
			const B, L = 2, 19
			ids := randomIDs(c, B, L, r)
			st := randomStates(c, B, r)
			parallel, parSt, err := model.ReferenceForward(c, p, flatIDs(ids), B, L, st)
			if err != nil {
				t.Fatal(err)
			}
			g, err := model.NewStepGraph(c, B, graph.Float32)
			if err != nil {
				t.Fatal(err)
			}
			b := serialized(t, c, g, p)
			V := c.VocabSize
			for pos := range L {
				var logits []float64
				logits, st = runF32(t, c, b, B, []int64{ids[0][pos], ids[1][pos]}, []int64{B}, st)
				for s := range B {
					want := parallel[(s*L+pos)*V : (s*L+pos+1)*V]
					if e := testutil.MaxRelErr(logits[s*V:(s+1)*V], want); e > fusedTol {
						t.Fatalf("position %d, sequence %d: fused step logits differ from the parallel forward by %.3g", pos, s, e)
					}
				}
			}
			if e := statesErr(st, parSt); e > fusedTol {
				t.Errorf("states after %d fused steps differ from the parallel forward's by %.3g", L, e)
			}
		})
	}
}

func TestFusedPrefillOfConcatenationEqualsPrefillContinued(t *testing.T) {
	for name, c := range fusedConfigs(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(35, 36))
			p := model.InitParams64(c, 9)
			const B, La, Lb = 2, 11, 14
			ids := randomIDs(c, B, La+Lb, r)
			prefill := func(lo, hi int, st model.States64) ([]float64, model.States64) {
				var part []int64
				for _, seq := range ids {
					part = append(part, seq[lo:hi]...)
				}
				g, err := model.NewPrefillGraph(c, B, hi-lo, graph.Float32)
				if err != nil {
					t.Fatal(err)
				}
				return runF32(t, c, serialized(t, c, g, p), B, part, []int64{B, int64(hi - lo)}, st)
			}
			zero := model.ZeroStates64(c, B)
			whole, wholeSt := prefill(0, La+Lb, zero)
			_, aSt := prefill(0, La, zero)
			cont, contSt := prefill(La, La+Lb, aSt)
			if e := testutil.MaxRelErr(cont, whole); e > fusedTol {
				t.Errorf("last logits: fused prefill(b) from prefill(a)'s state differs from prefill(a++b) by %.3g", e)
			}
			if e := statesErr(contSt, wholeSt); e > fusedTol {
				t.Errorf("states: fused prefill(b) from prefill(a)'s state differs from prefill(a++b) by %.3g", e)
			}
			if fresh, _ := prefill(La, La+Lb, zero); testutil.MaxRelErr(fresh, whole) < 1e-3 {
				t.Error("prefill(b) from zero state equals prefill(a++b): the state carries nothing")
			}
		})
	}
}

// TestFusedTrainGradientsEqualStandardAutodiff: the gradient of the training
// loss with respect to every parameter, through SSDScanGrad, equals the
// autodiff of the standard float32 graph.
func TestFusedTrainGradientsEqualStandardAutodiff(t *testing.T) {
	for name, c := range fusedConfigs(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(37, 38))
			p := toF32s(model.InitParams64(c, 10))
			const B, L = 2, 21
			w := randomWindow(c, B, L, r)
			grads := func(c model.Config) map[string][]float32 {
				g := graph.New("loss")
				ids := g.Input("ids", graph.Int64, B, L)
				targets := g.Input("targets", graph.Int64, B, L)
				mask := g.Input("mask", graph.Float32, B, L)
				loss, _, _, params := model.TrainLoss(c)(g, ids, targets, mask)
				g.Output("loss", graph.Reshape(loss, 1))
				gs, err := graph.Gradients(loss, params)
				if err != nil {
					t.Fatal(err)
				}
				for i, pt := range params {
					g.Output("grad."+pt.Name(), gs[i])
				}
				s := orttest.Session(t, g)
				feeds := map[string]*ort.Tensor{
					"ids":     ort.NewTensor([]int64{B, L}, w.ids),
					"targets": ort.NewTensor([]int64{B, L}, w.targets),
					"mask":    ort.NewTensor([]int64{B, L}, toF32(w.mask)),
				}
				for _, ps := range model.ParamShapes(c) {
					feeds[ps.Name] = ort.NewTensor(int64s(ps.Shape), p[ps.Name])
				}
				in, _ := model.StateNames(c)
				for i, v := range w.st.Flat() {
					feeds[in[i]] = ort.NewTensor(int64s(model.StateShapes(c, B)[i]), toF32(v))
				}
				out := orttest.Run(t, s, feeds)
				res := map[string][]float32{}
				for k, v := range out {
					res[k] = v.Float32()
				}
				return res
			}
			fused, std := grads(c), grads(c.Portable())
			for k, want := range std {
				// relative to the largest entry: gradients are far below 1
				scale := 0.0
				for _, v := range want {
					scale = max(scale, math.Abs(float64(v)))
				}
				if e := maxAbsDiff(fused[k], want) / scale; e > 1e-4 || scale == 0 {
					t.Errorf("%s: fused differs from the standard graph's autodiff by %.3g of its largest entry %.3g", k, e, scale)
				}
			}
		})
	}
}

// maxAbsDiff is max |a−b|, infinite on a NaN or a length mismatch.
func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	worst := 0.0
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		worst = max(worst, d)
	}
	return worst
}

// TestFusedOpsAreTheOnesORTRegisters: every op the graph builder emits in
// the fused domain has a kernel in package ort, under the same domain, and
// BlockStep's weights are packed in the panels its kernel reads.
func TestFusedOpsAreTheOnesORTRegisters(t *testing.T) {
	if graph.FusedDomain != ort.FusedDomain {
		t.Fatalf("graph domain %q, ort domain %q", graph.FusedDomain, ort.FusedDomain)
	}
	if g, o := strings.Join(graph.FusedOps(), ","), strings.Join(ort.FusedOps(), ","); g != o {
		t.Errorf("graph emits %s, ort registers %s", g, o)
	}
	if graph.BlockPanel != ort.BlockPanel {
		t.Errorf("graph packs BlockStep's weights in panels of %d columns, the kernel reads %d", graph.BlockPanel, ort.BlockPanel)
	}
}
