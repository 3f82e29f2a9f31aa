package model_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/internal/testutil"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
)

// testConfig is the tiny preset with a short chunk, so that windows of a few
// dozen tokens span several chunks and end inside one.
func testConfig(t testing.TB) model.Config {
	t.Helper()
	c, err := model.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	c.ChunkSize = 8
	return c
}

// testConfigs are testConfig without and with packet positions (K = 8, so
// that random packets of mean length 5 often reach the cap), and with both
// packet positions and two previous packets over a 12-token history (so
// that previous packets are often out of reach), and with packet positions
// and a label embedding of three labels; every model invariant is checked
// on each.
func testConfigs(t testing.TB) map[string]model.Config {
	t.Helper()
	c := testConfig(t)
	withPos := c
	withPos.PacketPositions, withPos.PacketToken = 8, 257
	withPrev := withPos
	withPrev.PrevPackets, withPrev.PacketHistory = 2, 12
	withLabels := withPos
	withLabels.Labels, withLabels.FirstLabel = 3, 260
	return map[string]model.Config{"plain": c, "packet positions": withPos, "previous packets": withPrev, "labels": withLabels}
}

// paramFeeds feeds float64 parameters by name.
func paramFeeds(c model.Config, p map[string][]float64, feeds map[string]*ort.Tensor) map[string]*ort.Tensor {
	if feeds == nil {
		feeds = map[string]*ort.Tensor{}
	}
	for _, ps := range model.ParamShapes(c) {
		feeds[ps.Name] = ort.NewTensor(int64s(ps.Shape), p[ps.Name])
	}
	return feeds
}

// stateFeeds feeds reference states for batch B.
func stateFeeds(c model.Config, B int, st model.States64, feeds map[string]*ort.Tensor) {
	in, _ := model.StateNames(c)
	shapes := model.StateShapes(c, B)
	for i, v := range st.Flat() {
		feeds[in[i]] = ort.NewTensor(int64s(shapes[i]), v)
	}
}

// statesOut collects a float64 graph's next states as reference states.
func statesOut(c model.Config, out map[string]*ort.Tensor) model.States64 {
	return statesOutAs(c, out, (*ort.Tensor).Float64)
}

// statesOutAs collects a graph's next states as reference states, reading
// each with value.
func statesOutAs(c model.Config, out map[string]*ort.Tensor, value func(*ort.Tensor) []float64) model.States64 {
	_, names := model.StateNames(c)
	var st model.States64
	for i := range c.Layers {
		st.Conv = append(st.Conv, value(out[names[2*i]]))
		st.SSM = append(st.SSM, value(out[names[2*i+1]]))
	}
	n := 2 * c.Layers
	next := func() []float64 {
		n++
		return value(out[names[n-1]])
	}
	if c.PacketPositions > 0 {
		st.Packet = next()
	}
	if c.PrevPackets > 0 {
		st.History = next()
	}
	if c.Labels > 0 {
		st.Label = next()
	}
	return st
}

// randomStates draws states uniform in [−1, 1).
func randomStates(c model.Config, B int, r *rand.Rand) model.States64 {
	shapes := model.StateShapes(c, B)
	var st model.States64
	for i := range c.Layers {
		st.Conv = append(st.Conv, uniform(r, size(shapes[2*i]), -1, 1))
		st.SSM = append(st.SSM, uniform(r, size(shapes[2*i+1]), -1, 1))
	}
	if K := c.PacketPositions; K > 0 {
		// Every value a packet-position state can hold: 0 (nothing read)
		// to K (the last token at the cap).
		for range B {
			st.Packet = append(st.Packet, float64(r.IntN(K+1)))
		}
	}
	if H := c.PacketHistory; c.PrevPackets > 0 {
		// A history as reading a sequence leaves it: nothing (0) for a
		// random prefix, then token ids + 1 with frequent <pkt>.
		for range B {
			read := r.IntN(H + 1)
			for i := range H {
				v := 0.0
				if i >= H-read {
					v = float64(r.IntN(c.VocabSize) + 1)
					if r.IntN(4) == 0 {
						v = float64(c.PacketToken + 1)
					}
				}
				st.History = append(st.History, v)
			}
		}
	}
	for range min(c.Labels, 1) * B {
		st.Label = append(st.Label, float64(r.IntN(c.Labels+1))) // none or a label
	}
	return st
}

func randomIDs(c model.Config, B, L int, r *rand.Rand) [][]int64 {
	ids := make([][]int64, B)
	for b := range ids {
		for range L {
			id := int64(r.IntN(c.VocabSize))
			if (c.PacketPositions > 0 || c.PrevPackets > 0) && r.IntN(5) == 0 {
				id = int64(c.PacketToken) // packets of mean length 5
			}
			if c.Labels > 0 && r.IntN(10) == 0 {
				id = int64(c.FirstLabel + r.IntN(c.Labels)) // a new trace's label
			}
			ids[b] = append(ids[b], id)
		}
	}
	return ids
}

func flatIDs(ids [][]int64) []int64 {
	var f []int64
	for _, s := range ids {
		f = append(f, s...)
	}
	return f
}

func uniform(r *rand.Rand, n int, lo, hi float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = lo + (hi-lo)*r.Float64()
	}
	return v
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func int64s(s []int) []int64 {
	o := make([]int64, len(s))
	for i, d := range s {
		o[i] = int64(d)
	}
	return o
}

func statesErr(a, b model.States64) float64 {
	worst := 0.0
	fa, fb := a.Flat(), b.Flat()
	if len(fa) != len(fb) {
		return math.Inf(1)
	}
	for i := range fb {
		worst = max(worst, testutil.MaxRelErr(fa[i], fb[i]))
	}
	return worst
}

// lossAndGradients builds a float32 graph of the masked cross-entropy loss
// of B windows of L tokens ("loss") and its gradient for every parameter
// ("grad.NAME").
func lossAndGradients(tb testing.TB, name string, c model.Config, B, L int) *graph.Graph {
	tb.Helper()
	g := graph.New(name, graph.WithFloat(graph.Float32))
	ids := g.Input("ids", graph.Int64, B, L)
	targets := g.Input("targets", graph.Int64, B, L)
	mask := g.Input("mask", graph.Float32, B, L)
	loss, _, _, params := model.TrainLoss(c)(g, ids, targets, mask)
	grads, err := graph.Gradients(loss, params)
	if err != nil {
		tb.Fatal(err)
	}
	g.Output("loss", graph.Reshape(loss, 1))
	for i, p := range params {
		g.Output("grad."+p.Name(), grads[i])
	}
	return g
}
