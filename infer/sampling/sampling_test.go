package sampling

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// randomLogits returns n logits from a fixed stream, spread like a trained
// model's (a few large, many small).
func randomLogits(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * 3)
	}
	return l
}

func mustSampler(t *testing.T, p Params, vocab int) *Sampler {
	t.Helper()
	s, err := New(p, vocab)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func nonzero(prob []float64) int {
	n := 0
	for _, q := range prob {
		if q > 0 {
			n++
		}
	}
	return n
}

func softmax(logits []float32, temp float64) []float64 {
	m := math.Inf(-1)
	for _, l := range logits {
		m = math.Max(m, float64(l))
	}
	p := make([]float64, len(logits))
	s := 0.0
	for i, l := range logits {
		p[i] = math.Exp((float64(l) - m) / temp)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
	return p
}

func TestDistributionSumsToOne(t *testing.T) {
	for _, p := range []Params{Default(), Paper(), {Temperature: 0.7, TopP: 0.5, MinP: 0.1, RepetitionPenalty: 1.3}} {
		s := mustSampler(t, p, 300)
		h := NewHistory(300, 0)
		for i := 0; i < 40; i++ {
			h.Add(i * 7)
		}
		prob, err := s.Distribution(randomLogits(300, 3), nil, h)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for _, q := range prob {
			sum += q
		}
		if math.Abs(sum-1) > 1e-12 {
			t.Errorf("%+v: probabilities sum to %v", p, sum)
		}
	}
}

func TestTopKKeepsExactlyK(t *testing.T) {
	logits := randomLogits(300, 1)
	for _, k := range []int{1, 2, 25, 299, 300, 1000} {
		p := Default()
		p.TopK = k
		prob, err := mustSampler(t, p, 300).Distribution(logits, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := min(k, 300)
		if got := nonzero(prob); got != want {
			t.Errorf("top-k %d kept %d ids, want %d", k, got, want)
		}
		// The kept ids are the k largest logits.
		idx := make([]int, 300)
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
		for _, id := range idx[:want] {
			if prob[id] == 0 {
				t.Errorf("top-k %d dropped id %d, one of the k largest", k, id)
			}
		}
	}
}

func TestTopKKeepsExactlyKUnderTies(t *testing.T) {
	logits := make([]float32, 50) // all equal
	p := Default()
	p.TopK = 7
	prob, err := mustSampler(t, p, 50).Distribution(logits, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := nonzero(prob); got != 7 {
		t.Fatalf("kept %d ids among ties, want 7", got)
	}
	for id := 0; id < 7; id++ {
		if prob[id] == 0 {
			t.Errorf("ties must resolve to the lowest ids; id %d dropped", id)
		}
	}
}

func TestTopPKeepsSmallestPrefixWithMassAtLeastP(t *testing.T) {
	logits := randomLogits(200, 2)
	full := softmax(logits, 1)
	sorted := slices.Clone(full)
	sort.Sort(sort.Reverse(sort.Float64Slice(sorted)))
	for _, topP := range []float64{0.01, 0.3, 0.5, 0.9, 0.99, 1} {
		p := Default()
		p.TopP = topP
		prob, err := mustSampler(t, p, 200).Distribution(logits, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := nonzero(prob)
		mass := 0.0
		for _, q := range sorted[:n] {
			mass += q
		}
		if mass < topP-1e-9 {
			t.Errorf("top-p %v: kept mass %v < p", topP, mass)
		}
		if n > 1 && mass-sorted[n-1] >= topP {
			t.Errorf("top-p %v: a shorter prefix (%d ids, mass %v) already reaches p", topP, n-1, mass-sorted[n-1])
		}
		// The kept ids are the most probable ones, renormalised.
		for id, q := range prob {
			if q > 0 && full[id] < sorted[n-1] {
				t.Errorf("top-p %v kept id %d below the cut", topP, id)
			}
			if q > 0 && math.Abs(q-full[id]/mass) > 1e-9 {
				t.Errorf("top-p %v: id %d has %v, want renormalised %v", topP, id, q, full[id]/mass)
			}
		}
	}
}

func TestMinPDropsTokensBelowFractionOfMax(t *testing.T) {
	logits := randomLogits(200, 4)
	full := softmax(logits, 1)
	maxp := slices.Max(full)
	for _, m := range []float64{0.01, 0.05, 0.2, 0.9} {
		p := Default()
		p.MinP = m
		prob, err := mustSampler(t, p, 200).Distribution(logits, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for id := range prob {
			keep := full[id] >= m*maxp
			if keep != (prob[id] > 0) {
				t.Errorf("min-p %v: id %d (p=%v, floor %v) kept=%v", m, id, full[id], m*maxp, prob[id] > 0)
			}
		}
	}
}

func TestTemperatureToZeroEqualsGreedy(t *testing.T) {
	greedy := Default()
	greedy.Greedy = true
	gs := mustSampler(t, greedy, 100)
	for seed := uint64(0); seed < 20; seed++ {
		logits := randomLogits(100, seed)
		want, err := gs.Sample(logits, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want != argmax(logits) {
			t.Fatalf("greedy picked %d, argmax is %d", want, argmax(logits))
		}
		zero := Default()
		zero.Temperature = 0
		got, _ := mustSampler(t, zero, 100).Sample(logits, nil, nil, nil)
		if got != want {
			t.Errorf("temperature 0 picked %d, greedy %d", got, want)
		}
		// A tiny temperature concentrates all the mass on the argmax.
		tiny := Default()
		tiny.Temperature = 1e-4
		prob, _ := mustSampler(t, tiny, 100).Distribution(logits, nil, nil)
		if prob[want] < 1-1e-9 {
			t.Errorf("temperature 1e-4 gives the argmax only %v", prob[want])
		}
	}
}

func argmax(l []float32) int {
	best := 0
	for i, v := range l {
		if v > l[best] {
			best = i
		}
	}
	return best
}

func TestMaskedTokensAreNeverSampled(t *testing.T) {
	const vocab = 64
	logits := randomLogits(vocab, 5)
	allowed := make([]bool, vocab)
	for i := range allowed {
		allowed[i] = i%5 == 3 // masks out, among others, the argmax region
	}
	// The masked-out tokens get huge logits: they must still never appear.
	for i := range logits {
		if !allowed[i] {
			logits[i] += 50
		}
	}
	for _, p := range []Params{Default(), Paper(), {Temperature: 5, TopP: 1, RepetitionPenalty: 1}, {Greedy: true, TopP: 1, RepetitionPenalty: 1}} {
		s := mustSampler(t, p, vocab)
		rng := TraceRNG(1, 2)
		h := NewHistory(vocab, 0)
		for i := 0; i < 3000; i++ {
			id, err := s.Sample(logits, allowed, h, rng)
			if err != nil {
				t.Fatal(err)
			}
			if !allowed[id] {
				t.Fatalf("%+v sampled masked id %d", p, id)
			}
			h.Add(id)
		}
	}
}

func TestAllMaskedIsAnError(t *testing.T) {
	s := mustSampler(t, Default(), 8)
	_, err := s.Sample(randomLogits(8, 1), make([]bool, 8), nil, TraceRNG(0, 0))
	if !errors.Is(err, ErrNothingAllowed) {
		t.Fatalf("got %v, want ErrNothingAllowed", err)
	}
}

func TestRepetitionPenaltyFollowsCTRLDefinition(t *testing.T) {
	logits := []float32{2, -2, 1, -1, 0.5}
	h := NewHistory(5, 0)
	h.Add(0)
	h.Add(1)
	h.Add(1) // counted once: CTRL penalises presence, not frequency
	p := Default()
	p.RepetitionPenalty = 2
	prob, err := mustSampler(t, p, 5).Distribution(logits, nil, h)
	if err != nil {
		t.Fatal(err)
	}
	want := softmax([]float32{1, -4, 1, -1, 0.5}, 1)
	for i := range want {
		if math.Abs(prob[i]-want[i]) > 1e-12 {
			t.Errorf("id %d: %v, want %v", i, prob[i], want[i])
		}
	}
}

func TestRepetitionWindowForgetsOldTokens(t *testing.T) {
	h := NewHistory(10, 3)
	for _, id := range []int{1, 2, 3, 4} {
		h.Add(id)
	}
	if h.Contains(1) {
		t.Error("id 1 left the window of 3 but is still penalised")
	}
	for _, id := range []int{2, 3, 4} {
		if !h.Contains(id) {
			t.Errorf("id %d inside the window is not penalised", id)
		}
	}
	h.Add(4)
	h.Add(4)
	if h.Contains(2) || h.Contains(3) || !h.Contains(4) {
		t.Error("window of three 4s should hold only id 4")
	}
	h.Reset()
	if h.Contains(4) {
		t.Error("Reset kept id 4")
	}
}

// The empirical frequencies of many draws match Distribution (chi-square
// with a fixed seed, so the test is deterministic but still checks the draw).
func TestSamplesFollowDistribution(t *testing.T) {
	const vocab, draws = 40, 200_000
	logits := randomLogits(vocab, 6)
	for _, p := range []Params{Default(), Paper(), {Temperature: 1.5, TopK: 10, TopP: 0.95, MinP: 0.02, RepetitionPenalty: 1}} {
		s := mustSampler(t, p, vocab)
		prob, err := s.Distribution(logits, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(prob)
		counts := make([]int, vocab)
		rng := TraceRNG(42, 0)
		for i := 0; i < draws; i++ {
			id, err := s.Sample(logits, nil, nil, rng)
			if err != nil {
				t.Fatal(err)
			}
			counts[id]++
		}
		chi2, dof := 0.0, -1
		for id, q := range want {
			if q == 0 {
				if counts[id] != 0 {
					t.Errorf("%+v: filtered id %d drawn %d times", p, id, counts[id])
				}
				continue
			}
			e := q * draws
			chi2 += (float64(counts[id]) - e) * (float64(counts[id]) - e) / e
			dof++
		}
		// 99.9th percentile of chi-square is below dof + 5·sqrt(2·dof) + 10.
		if lim := float64(dof) + 5*math.Sqrt(2*float64(dof)) + 10; chi2 > lim {
			t.Errorf("%+v: chi-square %.1f with %d dof exceeds %.1f", p, chi2, dof, lim)
		}
	}
}

func TestTraceRNGDependsOnlyOnSeedAndTrace(t *testing.T) {
	a, b := TraceRNG(7, 3), TraceRNG(7, 3)
	for i := 0; i < 100; i++ {
		if a.Uint64() != b.Uint64() {
			t.Fatal("same (seed, trace) gave different streams")
		}
	}
	seen := map[uint64]bool{}
	for seed := uint64(0); seed < 4; seed++ {
		for tr := uint64(0); tr < 64; tr++ {
			v := TraceRNG(seed, tr).Uint64()
			if seen[v] {
				t.Fatalf("streams (%d, %d) collide with another", seed, tr)
			}
			seen[v] = true
		}
	}
}

func TestValidateRejectsOutOfRange(t *testing.T) {
	bad := []Params{
		{Temperature: -1, TopP: 1, RepetitionPenalty: 1},
		{Temperature: 1, TopK: -1, TopP: 1, RepetitionPenalty: 1},
		{Temperature: 1, TopP: 0, RepetitionPenalty: 1},
		{Temperature: 1, TopP: 1.1, RepetitionPenalty: 1},
		{Temperature: 1, TopP: 1, MinP: 1, RepetitionPenalty: 1},
		{Temperature: 1, TopP: 1, RepetitionPenalty: 0},
		{Temperature: 1, TopP: 1, RepetitionPenalty: 1, RepetitionWindow: -2},
	}
	for _, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	for _, p := range []Params{Default(), Paper()} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v rejected: %v", p, err)
		}
	}
}

func TestSampleAllocatesNothing(t *testing.T) {
	s := mustSampler(t, Paper(), 300)
	logits := randomLogits(300, 8)
	h := NewHistory(300, 64)
	rng := TraceRNG(1, 1)
	allocs := testing.AllocsPerRun(100, func() {
		id, _ := s.Sample(logits, nil, h, rng)
		h.Add(id)
	})
	if allocs != 0 {
		t.Errorf("Sample allocates %v times per call", allocs)
	}
}

func BenchmarkSamplePaper(b *testing.B) {
	s, _ := New(Paper(), 320)
	logits := randomLogits(320, 9)
	h := NewHistory(320, 0)
	rng := TraceRNG(1, 1)
	for b.Loop() {
		id, _ := s.Sample(logits, nil, h, rng)
		h.Add(id)
	}
}

func TestSelectSmallestKeepsTheKSmallest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n := 1 + r.IntN(400)
		keys := make([]uint64, n)
		for i := range keys {
			keys[i] = r.Uint64()>>8<<8 | uint64(i) // distinct, with many equal high parts when masked below
			if trial%2 == 0 {
				keys[i] = uint64(r.IntN(4))<<32 | uint64(i) // heavy ties in the high bits
			}
		}
		k := 1 + r.IntN(n)
		want := slices.Clone(keys)
		slices.Sort(want)
		selectSmallest(keys, k)
		got := slices.Clone(keys[:k])
		slices.Sort(got)
		if !slices.Equal(got, want[:k]) {
			t.Fatalf("n=%d k=%d: selected %v, want %v", n, k, got, want[:k])
		}
	}
}
