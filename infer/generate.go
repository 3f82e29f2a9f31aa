package infer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/netssm/netssm/infer/sampling"
)

// Limits end each trace; zero fields are off, and at least one must be set.
type Limits struct {
	Packets  int           // complete packets per trace
	Tokens   int           // generated tokens per trace
	Duration time.Duration // trace time (from the trace start to a packet)
}

// Shard selects the traces t of a job with t mod Count == Index. The zero
// value is the whole job.
type Shard struct{ Index, Count int }

// ParseShard reads "i/n".
func ParseShard(s string) (Shard, error) {
	var sh Shard
	if _, err := fmt.Sscanf(s, "%d/%d", &sh.Index, &sh.Count); err != nil || fmt.Sprintf("%d/%d", sh.Index, sh.Count) != s {
		return Shard{}, fmt.Errorf("shard %q is not i/n (e.g. 0/4)", s)
	}
	if sh.Count < 1 || sh.Index < 0 || sh.Index >= sh.Count {
		return Shard{}, fmt.Errorf("shard %q: need 0 ≤ i < n", s)
	}
	return sh, nil
}

// Traces lists the trace indices of a job of k traces that the shard runs.
func (sh Shard) Traces(k int) []int {
	n, i := max(sh.Count, 1), sh.Index
	var ts []int
	for t := i; t < k; t += n {
		ts = append(ts, t)
	}
	return ts
}

// Job describes one generation run.
type Job struct {
	Traces   int    // K: trace indices 0…K−1
	Shard    Shard  // which of them this run produces
	Batch    int    // sequences decoded together (≥ 1)
	Seed     uint64 // with the prompt and the trace index, seeds every random choice (sampling.PromptSeed)
	Prompt   []int  // fed to prefill: the label token, then any prompt packets
	Limits   Limits
	Sampling sampling.Params
	Vocab    Vocabulary
	// NewGrammar returns a fresh packet grammar positioned before the
	// prompt; nil decodes unconstrained.
	NewGrammar func() Grammar
	// NewDecoder returns a fresh packet decoder for layouts whose packets
	// are not their byte tokens (the flow layout); nil, or a nil result:
	// a packet is the bytes between its `<pkt>` and the next.
	NewDecoder func() PacketDecoder
	// IgnoreEOS never samples `<eos>`, so every trace runs to its limit
	// (Hugging Face's and vLLM's ignore_eos).
	IgnoreEOS bool
	Timing    Timing    // nil: gaps of 0
	Start     time.Time // absolute time of every trace's start
	// Progress, if set, is called after every step with the totals so far.
	Progress func(Stats)
}

// Stats count what a run produced.
type Stats struct {
	Traces     int // traces finished
	Packets    int // packets written
	Tokens     int // tokens generated
	Steps      int // step-graph runs
	EOS        int // traces ended by `<eos>`
	OffGrammar int // tokens that fit no packet structure (unconstrained decoding only), skipped
	Truncated  int // packets cut short by a token or duration limit and dropped
	Empty      int // `<pkt>` with no bytes, skipped
	Elapsed    time.Duration
}

// TokensPerSecond is the generation rate.
func (s Stats) TokensPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Tokens) / s.Elapsed.Seconds()
}

func (j *Job) validate(m Model) error {
	if j.Traces < 1 {
		return fmt.Errorf("a job needs at least one trace, got %d", j.Traces)
	}
	if j.Batch < 1 {
		return fmt.Errorf("batch size %d must be ≥ 1", j.Batch)
	}
	if j.Limits.Packets < 0 || j.Limits.Tokens < 0 || j.Limits.Duration < 0 {
		return fmt.Errorf("limits must not be negative: %+v", j.Limits)
	}
	if j.Limits == (Limits{}) {
		return errors.New("no limit set: give a packet, token or duration limit per trace")
	}
	if len(j.Prompt) == 0 {
		return errors.New("empty prompt: it starts with the label token")
	}
	if err := j.Vocab.validate(m.Vocab()); err != nil {
		return err
	}
	return j.Sampling.Validate()
}

// slot is one row of the batch and the trace it is generating.
type slot struct {
	trace   int // -1: idle
	out     TraceFile
	rng     *rand.Rand // sampling stream of the trace
	pcg     *rand.PCG
	trng    *rand.Rand // timing stream
	tpcg    *rand.PCG
	hist    *sampling.History
	gram    Grammar
	dec     PacketDecoder // nil: a packet is its byte tokens
	pkt     []byte
	inPkt   bool
	bucket  int
	tokens  int
	packets int
	clock   time.Duration
	next    int // token fed at the next step
}

type generator struct {
	job     Job
	model   Model
	sink    Sink
	sampler *sampling.Sampler
	vocab   int // logits per row
	batch   Batch
	prefill []float32
	state   State
	queue   []int
	slots   []slot
	mask    []bool
	tokens  []int
	stats   Stats
	failed  *slot // the slot whose write failed; its sink handled its trace
}

// Generate runs job on m and writes every trace to sink. It returns the
// totals and the first error; on failure the traces still open are
// discarded (the error says how many), except one that a full disk cut
// short, which the sink keeps under a name that says so (see WriteError).
func Generate(ctx context.Context, m Model, sink Sink, job Job) (Stats, error) {
	start := time.Now()
	if err := job.validate(m); err != nil {
		return Stats{}, err
	}
	g := &generator{job: job, model: m, sink: sink, vocab: m.Vocab()}
	g.queue = job.Shard.Traces(job.Traces)
	if len(g.queue) == 0 {
		return Stats{}, nil
	}
	var err error
	if g.sampler, err = sampling.New(job.Sampling, job.Vocab.Size); err != nil {
		return Stats{}, err
	}
	if g.prefill, g.state, err = m.Prefill(job.Prompt); err != nil {
		return Stats{}, fmt.Errorf("prefill of the %d-token prompt: %w", len(job.Prompt), err)
	}
	if len(g.prefill) < g.vocab {
		return Stats{}, fmt.Errorf("prefill returned %d logits, the model has %d", len(g.prefill), g.vocab)
	}
	size := min(job.Batch, len(g.queue))
	if g.batch, err = m.NewBatch(size); err != nil {
		return Stats{}, fmt.Errorf("allocating a batch of %d: %w", size, err)
	}
	defer func() { g.batch.Close() }() // the batch it holds at the end (see shrink)
	g.mask = make([]bool, job.Vocab.Size)
	g.tokens = make([]int, size)
	g.slots = make([]slot, size)
	for i := range g.slots {
		s := &g.slots[i]
		s.trace = -1
		s.pcg, s.tpcg = rand.NewPCG(0, 0), rand.NewPCG(0, 0)
		s.rng, s.trng = rand.New(s.pcg), rand.New(s.tpcg)
		s.hist = sampling.NewHistory(job.Vocab.Size, job.Sampling.RepetitionWindow)
		s.pkt = make([]byte, 0, 65535)
	}
	err = g.run(ctx)
	g.stats.Elapsed = time.Since(start)
	if err != nil {
		if n := g.discardOpen(); n > 0 && ctx.Err() == nil {
			err = fmt.Errorf("%w; the %d other traces in progress were discarded", err, n)
		}
	}
	return g.stats, err
}

// discardOpen aborts the traces still open, except the one whose write
// failed, and returns how many it aborted.
func (g *generator) discardOpen() int {
	n := 0
	for i := range g.slots {
		if s := &g.slots[i]; s.trace >= 0 && s.out != nil && s != g.failed {
			s.out.Abort()
			n++
		}
	}
	return n
}

func (g *generator) run(ctx context.Context) error {
	for i := range g.slots {
		if err := g.startTrace(i); err != nil {
			return err
		}
		if err := g.feed(i, g.prefill); err != nil {
			return err
		}
	}
	for {
		active := false
		for i := range g.slots {
			g.tokens[i] = g.slots[i].next
			active = active || g.slots[i].trace >= 0
		}
		if !active {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("generation stopped after %d packets: %w", g.stats.Packets, err)
		}
		logits, err := g.batch.Step(g.tokens)
		if err != nil {
			return fmt.Errorf("step %d: %w", g.stats.Steps, err)
		}
		if len(logits) < len(g.slots)*g.vocab {
			return fmt.Errorf("step %d returned %d logits for %d×%d", g.stats.Steps, len(logits), len(g.slots), g.vocab)
		}
		g.stats.Steps++
		for i := range g.slots {
			if g.slots[i].trace < 0 {
				continue
			}
			if err := g.feed(i, logits[i*g.vocab:(i+1)*g.vocab]); err != nil {
				return err
			}
		}
		if g.job.Progress != nil {
			g.job.Progress(g.stats)
		}
		if err := g.shrink(); err != nil {
			return err
		}
	}
}

// shrink moves the traces still running into a smaller batch once the
// queue is empty and at most half of the slots are busy, so the traces that
// take longest do not step a batch of idle rows to their end. A row's
// logits do not depend on the batch around it, so traces stay the same.
func (g *generator) shrink() error {
	active := 0
	for i := range g.slots {
		if g.slots[i].trace >= 0 {
			active++
		}
	}
	if len(g.queue) > 0 || active == 0 || 2*active > len(g.slots) {
		return nil
	}
	nb, err := g.model.NewBatch(active)
	if err != nil {
		return fmt.Errorf("allocating a batch of %d for the last traces: %w", active, err)
	}
	kept := g.slots[:0]
	for i := range g.slots {
		if g.slots[i].trace < 0 {
			continue
		}
		st, err := g.batch.Save(i)
		if err == nil {
			err = nb.Load(len(kept), st)
		}
		if err != nil {
			nb.Close()
			return fmt.Errorf("moving trace %d into a batch of %d: %w", g.slots[i].trace, active, err)
		}
		kept = append(kept, g.slots[i])
	}
	old := g.batch
	g.batch, g.slots, g.tokens = nb, kept, g.tokens[:active]
	return old.Close()
}

// startTrace puts the next trace of the queue into slot i (or idles it).
func (g *generator) startTrace(i int) error {
	s := &g.slots[i]
	s.trace = -1
	if len(g.queue) == 0 {
		return nil
	}
	t := g.queue[0]
	g.queue = g.queue[1:]
	if err := g.batch.Load(i, g.state); err != nil {
		return fmt.Errorf("forking the prompt state into slot %d: %w", i, err)
	}
	seed := sampling.PromptSeed(g.job.Seed, g.job.Prompt)
	s.pcg.Seed(sampling.TraceSeed(seed, uint64(t)))
	s.tpcg.Seed(sampling.TraceSeed(seed^timingStream, uint64(t)))
	s.hist.Reset()
	s.gram = nil
	if g.job.NewGrammar != nil {
		if s.gram = g.job.NewGrammar(); s.gram == nil {
			return fmt.Errorf("trace %d: no packet grammar", t)
		}
		advance := s.gram.Advance
		if pg, ok := s.gram.(PromptGrammar); ok {
			advance = pg.AdvancePrompt
		}
		for k, id := range g.job.Prompt {
			if err := advance(id); err != nil {
				return fmt.Errorf("the prompt breaks the packet grammar at token %d (id %d): %w", k, id, err)
			}
		}
	}
	s.dec = nil
	if g.job.NewDecoder != nil {
		s.dec = g.job.NewDecoder()
	}
	if s.dec != nil {
		for _, id := range g.job.Prompt {
			s.dec.Token(id)
		}
	}
	s.pkt, s.inPkt, s.bucket = s.pkt[:0], g.job.Vocab.RowAfterLabel && len(g.job.Prompt) == 1, -1
	s.tokens, s.packets, s.clock = 0, 0, 0
	out, err := g.sink.OpenTrace(t)
	if err != nil {
		return fmt.Errorf("trace %d: %w", t, err)
	}
	s.out, s.trace = out, t
	return nil
}

// timingStream separates a trace's timing stream from its sampling stream.
const timingStream = 0x7157_d1a7_0f_71e5

// feed samples slot i's next token from logits and accepts it; when that
// ends the trace, the slot moves on to the next trace of the queue and
// samples its first token from the prompt's logits.
func (g *generator) feed(i int, logits []float32) error {
	for {
		s := &g.slots[i]
		if s.trace < 0 {
			s.next = 0
			return nil
		}
		var allowed []bool
		switch {
		case s.gram != nil:
			s.gram.Allowed(g.mask)
			allowed = g.mask
		case g.job.IgnoreEOS:
			for i := range g.mask {
				g.mask[i] = true
			}
			allowed = g.mask
		}
		if g.job.IgnoreEOS {
			allowed[g.job.Vocab.EOS] = false
		}
		id, err := g.sampler.Sample(logits[:g.job.Vocab.Size], allowed, s.hist, s.rng)
		if err != nil {
			return fmt.Errorf("trace %d, token %d: %w", s.trace, s.tokens, err)
		}
		ended, err := g.accept(s, id)
		if err != nil {
			return err
		}
		if !ended {
			s.next = id
			return nil
		}
		if err := g.endTrace(s); err != nil {
			return err
		}
		if err := g.startTrace(i); err != nil {
			return err
		}
		logits = g.prefill
	}
}

// accept applies one generated token to the slot's trace and reports
// whether the trace has ended.
func (g *generator) accept(s *slot, id int) (bool, error) {
	v := &g.job.Vocab
	lim := &g.job.Limits
	s.tokens++
	g.stats.Tokens++
	s.hist.Add(id)
	if s.gram != nil {
		if err := s.gram.Advance(id); err != nil {
			return false, fmt.Errorf("trace %d: the grammar rejects the token it allowed (id %d): %w", s.trace, id, err)
		}
	}
	decoded := true
	if s.dec != nil {
		var pkt []byte
		var ended bool
		if pkt, ended, decoded = s.dec.Token(id); ended {
			s.pkt = append(s.pkt[:0], pkt...)
		}
	}
	switch {
	case id == v.Packet || id == v.EOS:
		if s.inPkt {
			if done, err := g.finishPacket(s); done || err != nil {
				return true, err
			}
		}
		if id == v.EOS {
			g.stats.EOS++
			return true, nil
		}
		s.inPkt, s.pkt, s.bucket = true, s.pkt[:0], -1
	case v.DT(id) >= 0 && s.inPkt && s.bucket < 0 && len(s.pkt) == 0:
		s.bucket = v.DT(id)
	case s.dec != nil:
		if !decoded || !s.inPkt {
			g.stats.OffGrammar++
		}
	case v.IsByte(id) && s.inPkt && len(s.pkt) < cap(s.pkt):
		s.pkt = append(s.pkt, byte(id))
	case v.IsPad(id) && s.inPkt:
		// padding of the paper layout: not a packet byte
	default:
		g.stats.OffGrammar++
	}
	if lim.Tokens > 0 && s.tokens >= lim.Tokens {
		if s.dec != nil && s.inPkt {
			s.pkt = append(s.pkt[:0], s.dec.Packet()...)
		}
		if s.inPkt && len(s.pkt) > 0 {
			if g.mayEndHere(s) {
				_, err := g.finishPacket(s)
				return true, err
			}
			g.stats.Truncated++
		}
		return true, nil
	}
	return false, nil
}

// mayEndHere reports whether the packet in progress is complete: the grammar
// would allow `<pkt>` or `<eos>` now (always, unconstrained).
func (g *generator) mayEndHere(s *slot) bool {
	if s.gram == nil {
		return true
	}
	s.gram.Allowed(g.mask)
	return g.mask[g.job.Vocab.Packet] || g.mask[g.job.Vocab.EOS]
}

// finishPacket timestamps and writes the packet in progress; it reports
// whether a packet or duration limit ends the trace.
func (g *generator) finishPacket(s *slot) (bool, error) {
	s.inPkt = false
	lim := &g.job.Limits
	if g.job.Timing != nil {
		s.clock += g.job.Timing.Gap(s.bucket, s.trng)
	}
	if lim.Duration > 0 && s.clock > lim.Duration {
		return true, nil
	}
	if len(s.pkt) == 0 {
		g.stats.Empty++
		return false, nil
	}
	if err := s.out.WritePacket(g.job.Start.Add(s.clock), s.pkt); err != nil {
		g.failed = s
		return true, fmt.Errorf("trace %d: %w", s.trace, err)
	}
	s.packets++
	g.stats.Packets++
	return lim.Packets > 0 && s.packets >= lim.Packets, nil
}

func (g *generator) endTrace(s *slot) error {
	out := s.out
	s.out, s.trace = nil, -1
	if err := out.Close(); err != nil {
		return err
	}
	g.stats.Traces++
	return nil
}
