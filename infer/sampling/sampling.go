// Package sampling owns how netssm picks the next token from a model's logits:
// temperature, top-k, top-p (nucleus), min-p, the CTRL repetition penalty,
// greedy decoding, the `paper` preset, and the per-trace random streams that
// make generation reproducible. It knows nothing about tokens' meaning: the
// structure-aware mask (which ids may come next) is handed in by the caller,
// computed by the tokenizer's packet grammar, and the sampler never special-
// cases an id. It must not touch models, sessions or files.
//
// The filters run in a fixed order on one sequence's logits:
//
//  1. mask: ids whose allowed[id] is false get probability 0 and are never
//     chosen, whatever the other settings;
//  2. repetition penalty (Keskar et al. 2019, CTRL; the Hugging Face
//     definition): for every id present in the History, a positive logit is
//     divided by the penalty and a negative one multiplied by it;
//  3. greedy (Greedy, or Temperature 0): the highest logit wins, ties to the
//     lowest id; nothing below applies;
//  4. temperature: logits divided by Temperature, then softmax;
//  5. top-k: only the k most probable ids stay (exactly k; ties by lower id);
//  6. top-p: the smallest most-probable-first prefix whose mass is ≥ p stays;
//  7. min-p: ids below MinP times the largest probability are dropped;
//  8. one draw from what remains (inverse CDF with one uniform number).
//
// Determinism: every trace owns a random stream, TraceRNG(seed, trace index),
// which depends on nothing else (not the batch slot, not the batch size, not
// the shard), and a draw consumes exactly one number from it. The same seed
// therefore gives the same trace whatever the batch or shard it runs in.
// The seed a generation run passes is PromptSeed(seed, prompt): the prompt
// (the label token first) is part of every trace's stream, so two labels
// never share a stream under one --seed.
package sampling

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Params are the sampling settings. The zero value is not useful: start from
// Default or Paper.
type Params struct {
	Temperature       float64 // > 0; 0 means greedy
	TopK              int     // keep the k most probable ids; 0 keeps all
	TopP              float64 // in (0, 1]; 1 keeps all
	MinP              float64 // in [0, 1); 0 keeps all
	RepetitionPenalty float64 // ≥ 1... or any > 0; 1 is off
	RepetitionWindow  int     // penalise only the last n generated tokens; 0: all of the trace
	Greedy            bool    // argmax (after mask and penalty)
}

// Default is plain ancestral sampling: temperature 1, no filters, no penalty.
func Default() Params {
	return Params{Temperature: 1, TopP: 1, RepetitionPenalty: 1}
}

// Paper is the setting NetSSM's paper generated with: temperature 0.5,
// top-p 0.9, top-k 25, repetition penalty 1.8.
func Paper() Params {
	return Params{Temperature: 0.5, TopK: 25, TopP: 0.9, RepetitionPenalty: 1.8}
}

// Validate reports the first out-of-range setting, naming it.
func (p Params) Validate() error {
	switch {
	case math.IsNaN(p.Temperature) || p.Temperature < 0:
		return fmt.Errorf("temperature %v must be ≥ 0 (0 means greedy)", p.Temperature)
	case p.TopK < 0:
		return fmt.Errorf("top-k %d must be ≥ 0 (0 keeps every token)", p.TopK)
	case math.IsNaN(p.TopP) || p.TopP <= 0 || p.TopP > 1:
		return fmt.Errorf("top-p %v must be in (0, 1] (1 keeps every token)", p.TopP)
	case math.IsNaN(p.MinP) || p.MinP < 0 || p.MinP >= 1:
		return fmt.Errorf("min-p %v must be in [0, 1) (0 keeps every token)", p.MinP)
	case math.IsNaN(p.RepetitionPenalty) || p.RepetitionPenalty <= 0:
		return fmt.Errorf("repetition penalty %v must be > 0 (1 is off)", p.RepetitionPenalty)
	case p.RepetitionWindow < 0:
		return fmt.Errorf("repetition window %d must be ≥ 0 (0: the whole trace)", p.RepetitionWindow)
	}
	return nil
}

// IsGreedy reports whether the settings pick the argmax.
func (p Params) IsGreedy() bool { return p.Greedy || p.Temperature == 0 }

// ErrNothingAllowed means the mask left no token to choose.
var ErrNothingAllowed = errors.New("the mask allows no token")

// TraceRNG returns the random stream of one trace: a PCG generator seeded
// with TraceSeed(seed, trace). Streams of different traces are independent;
// the same pair always yields the same stream.
func TraceRNG(seed, trace uint64) *rand.Rand {
	return rand.New(rand.NewPCG(TraceSeed(seed, trace)))
}

// TraceSeed returns the two PCG seed words of a trace's stream: SplitMix64
// hashes of (seed, trace). Reseeding an existing rand.PCG with them gives the
// stream of TraceRNG without allocating.
func TraceSeed(seed, trace uint64) (uint64, uint64) {
	a := splitmix64(seed ^ splitmix64(trace+0x6a09e667f3bcc909))
	b := splitmix64(a ^ splitmix64(trace^0xbb67ae8584caa73b))
	return a, b
}

// PromptSeed mixes a prompt (the label token, then the tokens of any
// prompt packets) into seed: traces of different labels or prompts draw
// from different streams even under the same seed and trace index.
func PromptSeed(seed uint64, prompt []int) uint64 {
	h := splitmix64(seed ^ 0x3c6ef372fe94f82b)
	for _, t := range prompt {
		h = splitmix64(h ^ uint64(t))
	}
	return h
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// History is what the repetition penalty looks at: the tokens a trace has
// generated, either all of them (window 0: a presence set) or the last window
// of them (a ring buffer with per-id counts). Its memory is fixed at creation,
// whatever the number of tokens recorded.
type History struct {
	window int
	count  []int32 // per id: occurrences inside the window (or ever, window 0)
	ring   []int32
	next   int
	filled bool
}

// NewHistory makes an empty history over a vocabulary of vocab ids.
func NewHistory(vocab, window int) *History {
	h := &History{window: window, count: make([]int32, vocab)}
	if window > 0 {
		h.ring = make([]int32, window)
	}
	return h
}

// Add records a generated token.
func (h *History) Add(id int) {
	if id < 0 || id >= len(h.count) {
		return
	}
	if h.window == 0 {
		if h.count[id] == 0 {
			h.count[id] = 1
		}
		return
	}
	if h.filled {
		h.count[h.ring[h.next]]--
	}
	h.ring[h.next] = int32(id)
	h.count[id]++
	h.next++
	if h.next == h.window {
		h.next = 0
		h.filled = true
	}
}

// Contains reports whether id is inside the window.
func (h *History) Contains(id int) bool {
	return id >= 0 && id < len(h.count) && h.count[id] > 0
}

// Reset empties the history (a batch slot starting a new trace).
func (h *History) Reset() {
	clear(h.count)
	h.next, h.filled = 0, false
}

// Sampler applies Params to logits. It owns scratch buffers sized to the
// vocabulary so that sampling allocates nothing; one Sampler serves any
// number of sequences but must not be used from two goroutines at once.
type Sampler struct {
	p     Params
	vocab int
	logit []float64
	prob  []float64
	order []int32
	keys  []uint64 // sortable (descending logit, ascending id) keys
}

// New makes a sampler for a vocabulary of vocab ids. It validates p.
func New(p Params, vocab int) (*Sampler, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if vocab <= 0 {
		return nil, fmt.Errorf("vocabulary size %d must be > 0", vocab)
	}
	return &Sampler{p: p, vocab: vocab, logit: make([]float64, vocab), prob: make([]float64, vocab), order: make([]int32, 0, vocab), keys: make([]uint64, 0, vocab)}, nil
}

// Params returns the sampler's settings.
func (s *Sampler) Params() Params { return s.p }

// Distribution returns the probabilities the sampler draws from (length
// vocab, summing to 1; zero for every filtered or masked id). allowed may be
// nil (everything allowed); hist may be nil (no penalty). Under greedy
// settings the argmax gets probability 1. The slice is the sampler's scratch:
// valid until the next call.
func (s *Sampler) Distribution(logits []float32, allowed []bool, hist *History) ([]float64, error) {
	if len(logits) < s.vocab {
		return nil, fmt.Errorf("%d logits for a vocabulary of %d", len(logits), s.vocab)
	}
	if allowed != nil && len(allowed) < s.vocab {
		return nil, fmt.Errorf("mask of %d entries for a vocabulary of %d", len(allowed), s.vocab)
	}
	// 1–2: mask and penalty; order collects the allowed ids.
	s.order = s.order[:0]
	pen := s.p.RepetitionPenalty
	for id := 0; id < s.vocab; id++ {
		s.prob[id] = 0
		if allowed != nil && !allowed[id] {
			continue
		}
		l := float64(logits[id])
		if math.IsNaN(l) || math.IsInf(l, -1) {
			continue
		}
		if pen != 1 && hist != nil && hist.Contains(id) {
			if l > 0 {
				l /= pen
			} else {
				l *= pen
			}
		}
		s.logit[id] = l
		s.order = append(s.order, int32(id))
	}
	if len(s.order) == 0 {
		return nil, ErrNothingAllowed
	}
	// Keys order ids most probable first, ties to the lower id, so the
	// order is total; sorting packed integers beats a comparator, and only
	// what a filter needs is ordered: top-k selects its k ids first and
	// sorts only those, plain sampling walks the ids in id order unsorted.
	keys := s.keys[:0]
	for _, id := range s.order {
		l := float32(s.logit[id])
		s.logit[id] = float64(l) // the value the key orders by
		keys = append(keys, descendingKey(l)<<32|uint64(id))
	}
	s.keys = keys
	switch k := s.p.TopK; {
	case s.p.IsGreedy(): // 3: greedy, the smallest key
		best := int32(uint32(slices.Min(keys)))
		s.order = append(s.order[:0], best)
		s.prob[best] = 1
		return s.prob, nil
	case k > 0 && k < len(keys): // 5 (before 4, softmax is monotone): top-k
		selectSmallest(keys, k)
		keys = keys[:k]
		slices.Sort(keys)
	case s.p.TopP < 1 || s.p.MinP > 0:
		slices.Sort(keys)
	}
	s.order = s.order[:len(keys)]
	for i, key := range keys {
		s.order[i] = int32(uint32(key))
	}
	kept := s.order
	// 4: temperature and softmax (max-subtracted; +Inf logits share the mass).
	top := math.Inf(-1)
	for _, id := range kept {
		top = max(top, s.logit[id])
	}
	if math.IsInf(top, 1) {
		n := 0
		for _, id := range kept {
			if math.IsInf(s.logit[id], 1) {
				kept[n] = id
				n++
			}
		}
		kept = kept[:n]
		s.order = kept
		for _, id := range kept {
			s.prob[id] = 1
		}
	} else {
		for _, id := range kept {
			s.prob[id] = math.Exp((s.logit[id] - top) / s.p.Temperature)
		}
	}
	total := 0.0
	for _, id := range kept {
		total += s.prob[id]
	}
	// 6: top-p over the renormalised distribution.
	if p := s.p.TopP; p < 1 {
		cum, n := 0.0, 0
		for n < len(kept) {
			cum += s.prob[kept[n]] / total
			n++
			if cum >= p*(1-1e-12) {
				break
			}
		}
		for _, id := range kept[n:] {
			s.prob[id] = 0
		}
		kept = kept[:n]
	}
	// 7: min-p relative to the most probable id (kept[0]).
	if m := s.p.MinP; m > 0 {
		floor := m * s.prob[kept[0]]
		n := len(kept)
		for n > 1 && s.prob[kept[n-1]] < floor {
			n--
		}
		for _, id := range kept[n:] {
			s.prob[id] = 0
		}
		kept = kept[:n]
	}
	total = 0
	for _, id := range kept {
		total += s.prob[id]
	}
	for _, id := range kept {
		s.prob[id] /= total
	}
	return s.prob, nil
}

// Sample picks one id from logits under the mask and the history's penalty,
// consuming exactly one number from rng (none under greedy settings).
func (s *Sampler) Sample(logits []float32, allowed []bool, hist *History, rng *rand.Rand) (int, error) {
	prob, err := s.Distribution(logits, allowed, hist)
	if err != nil {
		return 0, err
	}
	if s.p.IsGreedy() {
		return int(s.order[0]), nil
	}
	u := rng.Float64()
	cum, last := 0.0, -1
	// Walk most-probable-first: the mapping from u to an id then depends
	// only on the distribution, not on how ids are numbered.
	for _, id := range s.order {
		q := prob[id]
		if q == 0 {
			continue
		}
		cum += q
		last = int(id)
		if u < cum {
			return last, nil
		}
	}
	return last, nil // rounding left u ≥ cum: the last kept id
}

// descendingKey maps a float32 to a uint32 whose ascending order is the
// float's descending order (IEEE-754 total order, NaN excluded earlier).
func descendingKey(f float32) uint64 {
	b := math.Float32bits(f)
	if b&0x80000000 != 0 {
		b = ^b
	} else {
		b |= 0x80000000
	}
	return uint64(^b)
}

// selectSmallest reorders keys so that its first k entries are the k
// smallest (in no particular order): Hoare quickselect with a median-of-three
// pivot, deterministic and allocation-free. Keys are distinct.
func selectSmallest(keys []uint64, k int) {
	lo, hi := 0, len(keys)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		a, b, c := keys[lo], keys[mid], keys[hi]
		pivot := max(min(a, b), min(max(a, b), c))
		i, j := lo, hi
		for i <= j {
			for keys[i] < pivot {
				i++
			}
			for keys[j] > pivot {
				j--
			}
			if i <= j {
				keys[i], keys[j] = keys[j], keys[i]
				i++
				j--
			}
		}
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}
