package train

import (
	"math"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// linearLoss is a tiny "model" for exercising the optimiser: an embedding
// table E (V×D) and a projection W (D×V); the loss is masked next-token
// cross-entropy of softmax(E[ids]·W). It has one recurrent "state" that is
// passed through (state_out = state_in + 1) so state plumbing is checked too.
func linearLoss(V, D, B int) LossBuilder {
	return func(g *graph.Graph, ids, targets, mask *graph.Tensor) (*graph.Tensor, []*graph.Tensor, []*graph.Tensor, []*graph.Tensor) {
		E := g.Param("embedding.weight", V, D)
		W := g.Param("head.weight", D, V)
		b := g.Param("head.bias", V)
		st := g.Input("state.in", graph.Float32, B, 2)
		x := graph.Gather(E, ids, 0)                      // (B,L,D)
		logits := graph.Add(graph.MatMul(x, W), b)        // (B,L,V)
		logp := graph.LogSoftmax(logits, -1)              // (B,L,V)
		onehot := graph.OneHot(targets, V, graph.Float32) // (B,L,V)
		nll := graph.Neg(graph.ReduceSum(graph.Mul(logp, onehot), -1))
		loss := graph.Div(graph.ReduceSum(graph.Mul(nll, mask)), graph.ReduceSum(mask).AddScalar(1e-9))
		out := st.AddScalar(1)
		g.Output("state.out", out)
		return loss, []*graph.Tensor{st}, []*graph.Tensor{out}, []*graph.Tensor{E, W, b}
	}
}

func TestTrainStepMatchesAdamWReference(t *testing.T) {
	orttest.Init(t)
	const V, D, B, L = 7, 3, 2, 5
	sg, err := BuildTrainStep("t", B, L, linearLoss(V, D, B), DefaultAdamW)
	if err != nil {
		t.Fatal(err)
	}
	init := map[string][]float32{}
	for i, p := range sg.Params {
		d := make([]float32, numel(sg.Shapes[i]))
		for j := range d {
			d[j] = float32(math.Sin(float64(7*i+j))) * 0.5
		}
		init[p] = d
	}
	e, err := NewEngine(sg, B, L, init, DefaultAdamW, ort.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	w := &Window{Inputs: make([]int64, B*L), Targets: make([]int64, B*L), Mask: make([]float32, B*L), Reset: make([]bool, B)}
	for i := range w.Inputs {
		w.Inputs[i] = int64(i % V)
		w.Targets[i] = int64((i + 1) % V)
		w.Mask[i] = 1
	}
	w.Mask[B*L-1] = 0
	var first, last float64
	for step := 0; step < 30; step++ {
		p, err := e.Param("head.bias")
		if err != nil {
			t.Fatal(err)
		}
		before := append([]float32(nil), p...)
		loss, _, err := e.Step(w, 0.05)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = loss
			// AdamW's first step moves every coordinate with a nonzero
			// gradient by lr·(1+…)≈lr·sign(g) (bias-corrected m̂/√v̂ = ±1);
			// biases take no weight decay, so |Δ| must be ≈ lr.
			after, err := e.Param("head.bias")
			if err != nil {
				t.Fatal(err)
			}
			for j, v := range after {
				if d := math.Abs(float64(v - before[j])); math.Abs(d-0.05) > 1e-4 {
					t.Errorf("first step moved head.bias[%d] by %v, want lr=0.05", j, d)
				}
			}
		}
		last = loss
	}
	if !(last < first*0.7) {
		t.Fatalf("loss did not fall: %v → %v", first, last)
	}
	if got := e.cur["state.in"].GetData()[0]; got != 30 {
		t.Fatalf("carried state after 30 steps = %v, want 30 (state out fed back in)", got)
	}
}
