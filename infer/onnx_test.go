package infer

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/infer/sampling"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// toyStepGraph builds a small recurrent step graph with random weights and
// two state tensors, h (B, 8) and c (B, 2, 3), enough to exercise binding,
// double buffering and forking without the Mamba-2 model:
//
//	x = E[token]; h' = tanh(h·W + x); c' = c/2 + x[:6]; logits = 3·h'·U + Σc'
func toyStepGraph(batch int) ([]byte, error) {
	const d = 8
	r := rand.New(rand.NewPCG(5, 6))
	rnd := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * scale)
		}
		return v
	}
	g := graph.New("toy_step")
	tok := g.Input("token", graph.Int64, batch)
	h := g.Input("state.h", graph.Float32, batch, d)
	c := g.Input("state.c", graph.Float32, batch, 2, 3)
	E := g.Const(rnd(fakeLogits*d, 1), fakeLogits, d)
	W := g.Const(rnd(d*d, 0.5), d, d)
	U := g.Const(rnd(d*fakeLogits, 1), d, fakeLogits)
	x := graph.Gather(E, tok, 0)                              // (B, d)
	h2 := graph.Tanh(graph.Add(graph.MatMul(h, W), x))        // (B, d)
	x6 := graph.Reshape(graph.Slice(x, 1, 0, 6), batch, 2, 3) // (B, 2, 3)
	c2 := graph.Add(c.MulScalar(0.5), x6)                     // (B, 2, 3)
	cs := graph.ReduceSumKeep(graph.Reshape(c2, batch, 6), 1) // (B, 1)
	logits := graph.Add(graph.MatMul(h2, U).MulScalar(3), cs) // (B, V)
	g.Output("logits", logits)
	g.Output("state_out.h", h2)
	g.Output("state_out.c", c2)
	return g.Serialize()
}

func toyModel() *ONNXModel {
	return &ONNXModel{
		Logits: fakeLogits,
		Signature: StepSignature{Token: "token", Logits: "logits", States: []StatePair{
			{In: "state.h", Out: "state_out.h"}, {In: "state.c", Out: "state_out.c"},
		}},
		StepGraph: toyStepGraph,
	}
}

func TestONNXBatchSizeDoesNotChangeTraces(t *testing.T) {
	orttest.Init(t)
	ref := paperFiles(t, toyModel(), 5, 1, 300)
	sameFiles(t, ref, paperFiles(t, toyModel(), 5, 4, 300), "ONNX batch 1 vs 4")
}

// Forking: a slot loaded with a prefilled state continues exactly as the
// sequence that was stepped through the prompt itself, bit for bit, in any
// slot of any batch (this caught buffers of varying alignment).
func TestONNXForkedStateContinuesThePrompt(t *testing.T) {
	orttest.Init(t)
	m := toyModel()
	prompt := []int{fakeVocab.Labels[1], fakeVocab.Packet, fakeVocab.DT0 + 2, 0x45, 0, 0}
	_, st, err := m.Prefill(prompt)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := m.Prefill(append(prompt, 0x1c))
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 3} {
		b, err := m.NewBatch(size)
		if err != nil {
			t.Fatal(err)
		}
		slot := size - 1
		if err := b.Load(slot, st); err != nil {
			t.Fatal(err)
		}
		tok := make([]int, size)
		tok[slot] = 0x1c
		out, err := b.Step(tok)
		if err != nil {
			t.Fatal(err)
		}
		got := out[slot*fakeLogits : (slot+1)*fakeLogits]
		worst := 0.0
		for i := range want {
			worst = max(worst, math.Abs(float64(got[i]-want[i])))
		}
		t.Logf("batch %d: max |forked − stepped| = %.2g", size, worst)
		if worst != 0 {
			t.Errorf("batch %d: forked slot differs from the stepped prompt by %v", size, worst)
		}
		b.Close()
	}
}

func TestONNXSignatureMismatchIsAnError(t *testing.T) {
	orttest.Init(t)
	m := toyModel()
	m.Signature.States = m.Signature.States[:1] // state.c left unbound
	if _, err := m.NewBatch(2); err == nil {
		t.Fatal("a step graph with an input outside the signature was accepted")
	}
}

// rssBytes is the process's resident set size now (Linux; 0 elsewhere).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, rss int64
	if _, err := fmt.Sscan(string(b), &size, &rss); err != nil {
		return 0
	}
	return rss * int64(os.Getpagesize())
}

// Constant memory with ONNX Runtime in the loop: once the process has
// reached its working size (ONNX Runtime's arenas, and the Go heap grown to
// its collection goal by the small garbage each Run leaves in
// onnxruntime_go), the resident set while generating 100k tokens stays
// within 5% (plus 2 MiB of noise) of the one while generating 25k.
func TestONNXMemoryConstantInGeneratedLength(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 150k tokens")
	}
	orttest.Init(t)
	peak := func(tokens int) (rss, goHeap int64) {
		job := baseJob()
		job.Traces, job.Batch = 1, 1
		job.Limits = Limits{Tokens: tokens}
		job.Sampling = sampling.Paper()
		job.NewGrammar = newEndlessGrammar
		var ms runtime.MemStats
		job.Progress = func(s Stats) {
			if s.Steps%1000 == 1 {
				rss = max(rss, rssBytes())
				runtime.ReadMemStats(&ms)
				goHeap = max(goHeap, int64(ms.HeapSys-ms.HeapReleased))
			}
		}
		st, err := Generate(context.Background(), toyModel(), &discardSink{}, job)
		if err != nil {
			t.Fatal(err)
		}
		if st.Tokens != tokens {
			t.Fatalf("generated %d tokens, want %d", st.Tokens, tokens)
		}
		return rss, goHeap
	}
	peak(25_000) // reach the working size
	short, shortGo := peak(25_000)
	long, longGo := peak(100_000)
	t.Logf("peak RSS: %.1f MiB at 25k tokens, %.1f MiB at 100k (Go heap %.1f vs %.1f MiB)",
		float64(short)/(1<<20), float64(long)/(1<<20), float64(shortGo)/(1<<20), float64(longGo)/(1<<20))
	if long > short+short/20+2<<20 {
		t.Errorf("RSS grew from %d to %d bytes with 4× the tokens", short, long)
	}
}

// ortOptions are the session options of the tests and benchmarks: the CPU,
// intra-op threads from NETSSM_BENCH_THREADS (default: one per core the process may use).
func ortOptions() ort.SessionOptions {
	n, _ := strconv.Atoi(os.Getenv("NETSSM_BENCH_THREADS"))
	ep := os.Getenv("NETSSM_TEST_EP") // cpu unless set (cuda on a GPU machine)
	if ep == "" {
		ep = "cpu"
	}
	return ort.SessionOptions{EP: ep, Threads: n}
}

// TestIOBindingGeneratesTheSameTraces decodes the same job with the
// recurrent states in Go buffers and with I/O binding (states in provider
// memory, two bindings alternating), on the toy graph and the tiny Mamba-2:
// the files must be byte-identical. Traces end at different times, so
// slots are reloaded while the others' states live on the device.
func TestIOBindingGeneratesTheSameTraces(t *testing.T) {
	orttest.Init(t)
	for name, m := range map[string]*ONNXModel{"toy": toyModel(), "mamba2 tiny": tinyMamba2(t, "tiny")} {
		m.Session = ortOptions()
		m.Session.IOBinding = "off"
		ref := paperFiles(t, m, 5, 3, 150)
		m.Session.IOBinding = "on"
		sameFiles(t, ref, paperFiles(t, m, 5, 3, 150), name+": I/O binding off vs on")
	}
}
