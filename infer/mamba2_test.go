package infer

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netssm/netssm/infer/sampling"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort/orttest"
)

func tinyMamba2(t testing.TB, preset string) *ONNXModel {
	t.Helper()
	c, err := model.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	return mamba2Of(t, c)
}

func mamba2Of(t testing.TB, c model.Config) *ONNXModel {
	t.Helper()
	orttest.Init(t)
	m, err := NewMamba2(c, model.InitParams(c, 7), ortOptions())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The chunked prefill graph and the step graph stepped through the same
// prompt leave the same logits (float32 tolerance): the state the batch
// forks is the state the recurrence would have reached.
func TestMamba2PrefillMatchesSteppedPrompt(t *testing.T) {
	plain, err := model.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	withPos := plain
	withPos.PacketPositions, withPos.PacketToken = 16, fakeVocab.Packet // the header is longer than 16
	withPrev := withPos
	withPrev.PrevPackets, withPrev.PacketHistory = 2, 64 // the prompt's two packets are in reach
	fused := withPrev
	fused.Kernels = model.KernelsFused
	for name, c := range map[string]model.Config{"plain": plain, "packet positions": withPos, "previous packets": withPrev, "fused kernels": fused} {
		t.Run(name, func(t *testing.T) { testMamba2PrefillMatchesSteppedPrompt(t, mamba2Of(t, c)) })
	}
}

func testMamba2PrefillMatchesSteppedPrompt(t *testing.T, m *ONNXModel) {
	prompt := []int{fakeVocab.Labels[0], fakeVocab.Packet, fakeVocab.DT0 + 3}
	for _, b := range fakeHeader {
		prompt = append(prompt, int(b))
	}
	prompt = append(prompt, fakeVocab.Packet)
	want, st, err := m.Prefill(prompt)
	if err != nil {
		t.Fatal(err)
	}
	stepped := *m
	stepped.PrefillFunc = nil
	got, st2, err := stepped.Prefill(prompt)
	if err != nil {
		t.Fatal(err)
	}
	diff := 0.0
	for i := range want {
		diff = max(diff, math.Abs(float64(want[i]-got[i])))
	}
	for k := range st {
		for i := range st[k] {
			diff = max(diff, math.Abs(float64(st[k][i]-st2[k][i])))
		}
	}
	t.Logf("max |prefill − stepped| over logits and states: %.2e", diff)
	if diff > 1e-3 {
		t.Errorf("prefill and stepped prompt differ by %v", diff)
	}
}

func TestMamba2BatchSizeDoesNotChangeTraces(t *testing.T) {
	m := tinyMamba2(t, "tiny")
	sameFiles(t, paperFiles(t, m, 4, 1, 200), paperFiles(t, m, 4, 4, 200), "Mamba-2 batch 1 vs 4")
}

// A sequence saved from one batch and loaded into a slot of another
// continues bit for bit (what moves the last traces into a smaller batch:
// TestFinishedTracesLeaveTheBatch).
func TestMamba2SavedStateContinuesInAnotherBatch(t *testing.T) {
	m := tinyMamba2(t, "tiny")
	step := func(b Batch, tok []int) []float32 {
		out, err := b.Step(tok)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	big, err := m.NewBatch(4)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	for k := range 6 {
		step(big, []int{0x45 + k, 7 * k, 0x11, fakeVocab.Packet})
	}
	st, err := big.Save(2)
	if err != nil {
		t.Fatal(err)
	}
	small, err := m.NewBatch(2)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if err := small.Load(1, st); err != nil {
		t.Fatal(err)
	}
	for k := range 4 {
		want := slices.Clone(step(big, []int{1, 2, 0x40 + k, 3})[2*fakeLogits : 3*fakeLogits])
		got := step(small, []int{9, 0x40 + k})[fakeLogits : 2*fakeLogits]
		if !slices.Equal(want, got) {
			t.Fatalf("step %d after the move: the logits differ from the batch the state came from", k)
		}
	}
}

// With fused kernels the step updates the layers' states in place (one
// buffer for input and output): traces still do not depend on the batch,
// and stepping a prompt still lands where the chunked prefill does
// (TestMamba2PrefillMatchesSteppedPrompt, "fused kernels").
func TestMamba2InPlaceStatesDoNotChangeTraces(t *testing.T) {
	c, err := model.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	c.Kernels = model.KernelsFused
	m := mamba2Of(t, c)
	if !m.Signature.States[0].InPlace {
		t.Fatal("the fused step graph's conv state is not updated in place")
	}
	sameFiles(t, paperFiles(t, m, 4, 1, 200), paperFiles(t, m, 4, 4, 200), "fused Mamba-2 batch 1 vs 4")
}

// BenchmarkMamba2Step measures step decoding (the step graph alone, no
// sampling) in tokens/s: go test -run XXX -bench Mamba2Step ./infer/
// ("small+positions" is small with 128 packet positions, for the cost of
// counting offsets in the graph; "small+prev" adds copy logits from two
// previous packets over a 256-token history, as the README measured.)
func BenchmarkMamba2Step(b *testing.B) {
	for _, name := range []string{"tiny", "small", "small+positions", "small+prev"} {
		base, _, _ := strings.Cut(name, "+")
		c, err := model.Preset(base)
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(name, "+") {
			c.PacketPositions, c.PacketToken = 128, fakeVocab.Packet
		}
		if strings.HasSuffix(name, "+prev") {
			c.PrevPackets, c.PacketHistory = 2, 256
		}
		m := mamba2Of(b, c)
		for _, batch := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				bt, err := m.NewBatch(batch)
				if err != nil {
					b.Fatal(err)
				}
				defer bt.Close()
				tok := make([]int, batch)
				for b.Loop() {
					if _, err := bt.Step(tok); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "tokens/s")
			})
		}
	}
}

// BenchmarkMamba2Generate is the whole decoding loop in steady state: step,
// grammar mask, paper sampling, packet assembly (written nowhere); the
// clock starts after the first step, so session set-up and prefill are out.
// go test -run XXX -bench Mamba2Generate ./infer/
func BenchmarkMamba2Generate(b *testing.B) {
	for _, kernels := range []string{model.KernelsFused, model.KernelsStandard} {
		c, _ := model.Preset("small")
		c.Kernels = kernels
		m := mamba2Of(b, c)
		for _, batch := range []int{1, 32} {
			b.Run(fmt.Sprintf("small/%s/batch=%d", kernels, batch), func(b *testing.B) { benchGenerate(b, m, batch) })
		}
	}
}

// benchGenerate times sampling 400 tokens per trace of batch traces,
// after each run's first step, at temperature 1 with nothing cut from the
// distribution, as the PyTorch reference samples (a multinomial draw at
// temperature 1), and with the packet grammar's mask, which it lacks.
func benchGenerate(b *testing.B, m *ONNXModel, batch int) {
	var tokens int
	var busy time.Duration
	for b.Loop() {
		var t0 time.Time
		var tok0 int
		job := baseJob()
		job.Traces, job.Batch = batch, batch
		job.Limits = Limits{Tokens: 400}
		job.Sampling = sampling.Default()
		job.NewGrammar = newEndlessGrammar
		job.Progress = func(s Stats) {
			if s.Steps == 1 {
				t0, tok0 = time.Now(), s.Tokens
			}
		}
		st, err := Generate(context.Background(), m, &discardSink{}, job)
		if err != nil {
			b.Fatal(err)
		}
		busy += time.Since(t0)
		tokens += st.Tokens - tok0
	}
	b.ReportMetric(float64(tokens)/busy.Seconds(), "tokens/s")
}

// A sequence's logits do not depend on the batch around it or on its slot:
// bit for bit, which is what makes traces identical across batch sizes.
func TestMamba2RowsDoNotDependOnBatchSize(t *testing.T) {
	m := tinyMamba2(t, "tiny")
	_, st, err := m.Prefill([]int{fakeVocab.Labels[0], fakeVocab.Packet})
	if err != nil {
		t.Fatal(err)
	}
	seq := []int{fakeVocab.DT0 + 1, 0x45, 0, 0, 0x1c, 7, 7, 0x40}
	run := func(size, slot int) [][]float32 {
		b, err := m.NewBatch(size)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		for i := 0; i < size; i++ {
			if err := b.Load(i, st); err != nil {
				t.Fatal(err)
			}
		}
		var rows [][]float32
		tok := make([]int, size)
		for _, id := range seq {
			for i := range tok {
				tok[i] = (id + 31*i) % 256 // other slots feed other tokens
			}
			tok[slot] = id
			out, err := b.Step(tok)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, append([]float32(nil), out[slot*fakeLogits:(slot+1)*fakeLogits]...))
		}
		return rows
	}
	ref := run(1, 0)
	for _, c := range []struct{ size, slot int }{{4, 0}, {4, 3}, {5, 2}, {32, 17}} {
		got := run(c.size, c.slot)
		worst := 0.0
		for s := range ref {
			for i := range ref[s] {
				worst = max(worst, math.Abs(float64(ref[s][i]-got[s][i])))
			}
		}
		if worst != 0 {
			t.Errorf("batch %d slot %d: logits differ from batch 1 by up to %.2g", c.size, c.slot, worst)
		}
	}
}
