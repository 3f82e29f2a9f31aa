package train

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/netssm/netssm/ort"
)

// ValResult is one validation pass.
type ValResult struct {
	Loss          float64 // nats per target token
	BitsPerPacket float64 // total bits / packets, or NaN when no packet token is known
	Unigram       float64 // the unigram baseline's nats per token on the same targets
	Tokens        int64
	Packets       int64
}

// Validator computes validation loss on held-out traces: batch row r walks
// traces r, r+B, r+2B… in order, carrying recurrent state through each trace
// window by window, exactly as training sees them. MaxTokens (if > 0) bounds
// a pass, so frequent evaluations stay cheap: every trace then contributes
// its first MaxTokens/traces target tokens (at least one window), so all
// traces, and so all labels, weigh in; the same tokens are used each time.
type Validator struct {
	eg          *EvalGraph
	sess        *ort.Session
	store       TraceStore
	batch       int
	ctx         int
	maxTokens   int64
	unigram     []float64 // −log p(token) under training frequencies
	packetToken int       // id of <pkt>, or −1
	states      map[string]*buffer
	lens        []int64 // tokens per trace, read on the first Run
	nextState   map[string]*buffer
	observe     TokenObserver // with a per-token graph: told every target's loss
}

// TokenObserver is told the loss (nats) of every target a per-token
// validation pass scores: toks[target] of held-out trace trace.
type TokenObserver func(trace int, toks []uint16, target int, nats float64)

// ObserveTokens makes Run report every target's loss to f; the validator
// must have been built from a per-token graph (EvalGraph.PerToken).
func (v *Validator) ObserveTokens(f TokenObserver) error {
	if !v.eg.PerToken {
		return fmt.Errorf("the validation graph reports one loss per window; per-token losses need a per-token loss builder (model.TokenLoss)")
	}
	v.observe = f
	return nil
}

// NewValidator compiles the evaluation graph for B rows of ctx tokens.
func NewValidator(eg *EvalGraph, store TraceStore, B, ctx int, maxTokens int64, unigram []float64, packetToken int, so ort.SessionOptions) (*Validator, error) {
	sess, err := ort.NewSession(eg.Model, so)
	if err != nil {
		return nil, err
	}
	v := &Validator{eg: eg, sess: sess, store: store, batch: B, ctx: ctx, maxTokens: maxTokens, unigram: unigram, packetToken: packetToken, states: map[string]*buffer{}, nextState: map[string]*buffer{}}
	for i, s := range eg.StatesIn {
		a, err := newBuffer(eg.StateDims[i], nil)
		if err != nil {
			v.Close()
			return nil, err
		}
		b, err := newBuffer(eg.StateDims[i], nil)
		if err != nil {
			v.Close()
			return nil, err
		}
		v.states[s], v.nextState[s] = a, b
	}
	return v, nil
}

// Close releases the session and buffers.
func (v *Validator) Close() {
	for _, m := range []map[string]*buffer{v.states, v.nextState} {
		for _, b := range m {
			b.Destroy()
		}
	}
	v.sess.Close()
}

// UnigramTable turns token counts into −log p with add-one smoothing.
func UnigramTable(store TraceStore, vocab int) ([]float64, error) {
	counts := make([]float64, vocab)
	total := float64(vocab)
	for i := 0; i < store.NumTraces(); i++ {
		toks, err := store.TraceTokens(i)
		if err != nil {
			return nil, err
		}
		for _, t := range toks[min(1, len(toks)):] {
			if int(t) < vocab {
				counts[t]++
				total++
			}
		}
	}
	nlp := make([]float64, vocab)
	for i, c := range counts {
		nlp[i] = -math.Log((c + 1) / total)
	}
	return nlp, nil
}

func (v *Validator) readLengths() error {
	if v.lens != nil {
		return nil
	}
	for i := 0; i < v.store.NumTraces(); i++ {
		t, err := v.store.TraceTokens(i)
		if err != nil {
			return fmt.Errorf("validation trace %d: %w", i, err)
		}
		v.lens = append(v.lens, int64(len(t)))
	}
	return nil
}

// FullPassLayout returns the rows and window length for a pass over every
// validation token that needs the fewest Runs: rows is a divisor of the
// validator's B and rows × window = B × ctx, so every Run costs the same.
// One long capture occupies one row for its whole length (its state is
// carried through it) while short ones finish early and leave their rows
// idle; fewer, longer rows then finish sooner. The loss does not depend on
// the layout (a window only cuts where the carried state resumes).
func (v *Validator) FullPassLayout() (rows, window int, err error) {
	bestRuns := int64(math.MaxInt64)
	for r := v.batch; r >= 1; r-- {
		if v.batch%r != 0 {
			continue
		}
		w := int64(v.ctx * (v.batch / r))
		runs := make([]int64, r)
		if err := v.assign(r, math.MaxInt64, func(row, trace int) {
			if n := v.lens[trace]; n >= 2 {
				runs[row] += (n - 1 + w - 1) / w
			}
		}); err != nil {
			return 0, 0, err
		}
		if m := slices.Max(runs); m < bestRuns {
			bestRuns, rows, window = m, r, int(w)
		}
	}
	return rows, window, nil
}

// assign spreads the traces over the B rows, longest first onto the row with
// the fewest tokens so far, so that a few long captures do not leave the
// other rows idle (a row walks its traces one after another).
func (v *Validator) assign(rows int, perTrace int64, add func(row, trace int)) error {
	if err := v.readLengths(); err != nil {
		return err
	}
	order := make([]int, len(v.lens))
	for i := range order {
		order[i] = i
	}
	size := func(i int) int64 { return min(v.lens[i], perTrace) }
	sort.SliceStable(order, func(a, b int) bool { return size(order[a]) > size(order[b]) })
	load := make([]int64, rows)
	for _, i := range order {
		r := 0
		for k := range load {
			if load[k] < load[r] {
				r = k
			}
		}
		load[r] += size(i)
		add(r, i)
	}
	return nil
}

// valWalk is one batch row's walk through its validation traces.
type valWalk struct {
	traces []int    // the traces the row reads, in order
	cur    int      // index into traces of the next one to start
	off    int      // position of the next input token in toks
	toks   []uint16 // the trace being read (nil: none)
}

// valTotals accumulates a pass.
type valTotals struct {
	res       ValResult
	nats, uni float64
}

// valWindow is the tensors one validation Run reads and writes.
type valWindow struct {
	ids, targets *ort.HostTensor[int64]
	mask, loss   *buffer // loss: (1) the window's mean, or (B, T) per token
}

func newValWindow(B, T int, perToken bool) (*valWindow, error) {
	w := &valWindow{}
	var err error
	if w.ids, err = ort.NewHostTensor[int64](int64(B), int64(T)); err != nil {
		return nil, err
	}
	if w.targets, err = ort.NewHostTensor[int64](int64(B), int64(T)); err != nil {
		w.destroy()
		return nil, err
	}
	if w.mask, err = newBuffer([]int64{int64(B), int64(T)}, nil); err != nil {
		w.destroy()
		return nil, err
	}
	lossShape := []int64{1}
	if perToken {
		lossShape = []int64{int64(B), int64(T)}
	}
	if w.loss, err = newBuffer(lossShape, nil); err != nil {
		w.destroy()
		return nil, err
	}
	return w, nil
}

func (w *valWindow) destroy() {
	for _, v := range []ort.Value{w.ids, w.targets, w.mask, w.loss} {
		if v != nil && !isNilValue(v) {
			v.Destroy()
		}
	}
}

// Run evaluates the parameters (by name) on the validation traces. It stops
// with ctx's error when ctx is cancelled; progress, if not nil, is called
// after every window with the target tokens done and in all.
func (v *Validator) Run(ctx context.Context, params map[string]*buffer, progress func(done, total int64)) (ValResult, error) {
	walks, perTrace, total, err := v.plan()
	if err != nil {
		return ValResult{}, err
	}
	w, err := newValWindow(v.batch, v.ctx, v.eg.PerToken)
	if err != nil {
		return ValResult{}, err
	}
	defer w.destroy()
	for _, b := range v.states {
		b.ZeroContents()
	}
	var acc valTotals
	for {
		live, n, err := v.fill(w, walks, perTrace, &acc)
		if err != nil {
			return acc.res, err
		}
		if live == 0 {
			break
		}
		if n == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return acc.res, err
		}
		if err := v.runWindow(w, params); err != nil {
			return acc.res, err
		}
		acc.nats += v.windowNats(w, walks, n)
		acc.res.Tokens += int64(n)
		if progress != nil {
			progress(acc.res.Tokens, total)
		}
	}
	return acc.result()
}

// plan assigns the traces to the rows; perTrace bounds the target tokens
// read of each trace and total is the target tokens of the whole pass.
func (v *Validator) plan() (walks []valWalk, perTrace, total int64, err error) {
	perTrace = int64(math.MaxInt64)
	if v.maxTokens > 0 {
		perTrace = max(v.maxTokens/int64(max(v.store.NumTraces(), 1)), int64(v.ctx))
	}
	walks = make([]valWalk, v.batch)
	err = v.assign(v.batch, perTrace, func(r, trace int) {
		walks[r].traces = append(walks[r].traces, trace)
		total += max(min(v.lens[trace]-1, perTrace), 0)
	})
	return walks, perTrace, total, err
}

// fill writes the next window of every row, moving a row that finished its
// trace on to its next one (from a zero state). It returns the rows still
// reading and the target tokens written, and adds the unigram baseline and
// packets of those targets to acc.
func (v *Validator) fill(w *valWindow, walks []valWalk, perTrace int64, acc *valTotals) (live, n int, err error) {
	in, tg, mk := w.ids.GetData(), w.targets.GetData(), w.mask.GetData()
	clear(in)
	clear(tg)
	clear(mk)
	for r := range walks {
		row := &walks[r]
		if row.toks == nil || row.off+1 >= len(row.toks) || int64(row.off) >= perTrace {
			if err := v.nextTrace(r, row); err != nil {
				return 0, 0, err
			}
			if row.toks == nil {
				continue
			}
		}
		live++
		n += fillRow(in, tg, mk, r, v.ctx, row.toks, row.off)
		row.off += v.ctx
	}
	for i, m := range mk {
		if m != 0 {
			acc.uni += v.unigram[tg[i]]
			if int(tg[i]) == v.packetToken {
				acc.res.Packets++
			}
		}
	}
	return live, n, nil
}

// nextTrace moves row r on to its next trace of two or more tokens (toks
// nil when it has none left) and zeroes the row's recurrent state.
func (v *Validator) nextTrace(r int, row *valWalk) error {
	row.toks = nil
	for row.cur < len(row.traces) && row.toks == nil {
		t, err := v.store.TraceTokens(row.traces[row.cur])
		if err != nil {
			return fmt.Errorf("validation trace %d: %w", row.traces[row.cur], err)
		}
		row.cur++
		if len(t) >= 2 {
			row.toks, row.off = t, 0
		}
	}
	for _, s := range v.eg.StatesIn {
		d := v.states[s].GetData()
		per := len(d) / v.batch
		clear(d[r*per : (r+1)*per])
	}
	return nil
}

// runWindow runs the validation graph on one window and carries the
// recurrent states out of it into the next.
func (v *Validator) runWindow(w *valWindow, params map[string]*buffer) error {
	fixed := map[string]ort.Value{InIDs: w.ids, InTargets: w.targets, InMask: w.mask}
	inputs := make([]ort.Value, len(v.sess.InputNames()))
	err := bindByName(inputs, v.sess.InputNames(), func(name string) (ort.Value, bool) {
		if x, ok := fixed[name]; ok {
			return x, true
		}
		if b, ok := v.states[name]; ok {
			return b, true
		}
		b, ok := params[name]
		return b, ok
	}, "validation graph input")
	if err != nil {
		return err
	}
	outOf := map[string]*buffer{}
	for i, s := range v.eg.StatesIn {
		outOf[v.eg.StatesOut[i]] = v.nextState[s]
	}
	outputs := make([]ort.Value, len(v.sess.OutputNames()))
	err = bindByName(outputs, v.sess.OutputNames(), func(name string) (ort.Value, bool) {
		if name == OutLoss || name == OutTokenLoss {
			return w.loss, true
		}
		b, ok := outOf[name]
		return b, ok
	}, "validation graph output")
	if err != nil {
		return err
	}
	if err := v.sess.RunValues(inputs, outputs); err != nil {
		return err
	}
	v.states, v.nextState = v.nextState, v.states
	return nil
}

// windowNats is the summed loss of a window's n targets; with a per-token
// graph it tells the observer each target's loss.
func (v *Validator) windowNats(w *valWindow, walks []valWalk, n int) float64 {
	loss := w.loss.GetData()
	if !v.eg.PerToken {
		return float64(loss[0]) * float64(n)
	}
	T, mk := v.ctx, w.mask.GetData()
	sum := 0.0
	for r := range walks {
		row := &walks[r]
		for t := 0; t < T; t++ {
			if mk[r*T+t] == 0 {
				continue
			}
			sum += float64(loss[r*T+t])
			if v.observe != nil {
				v.observe(row.traces[row.cur-1], row.toks, row.off-T+t+1, float64(loss[r*T+t]))
			}
		}
	}
	return sum
}

// result turns the totals into per-token and per-packet figures.
func (acc *valTotals) result() (ValResult, error) {
	res := acc.res
	if res.Tokens == 0 {
		return res, fmt.Errorf("the validation set has no tokens to predict")
	}
	res.Loss = acc.nats / float64(res.Tokens)
	res.Unigram = acc.uni / float64(res.Tokens)
	res.BitsPerPacket = math.NaN()
	if res.Packets > 0 {
		res.BitsPerPacket = acc.nats / math.Ln2 / float64(res.Packets)
	}
	return res, nil
}
