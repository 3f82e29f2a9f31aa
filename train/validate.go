package train

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"

	ortgo "github.com/yalue/onnxruntime_go"

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
	eg        *EvalGraph
	sess      *ort.Session
	store     TraceStore
	batch     int
	ctx       int
	maxTokens int64
	unigram   []float64 // −log p(token) under training frequencies
	pktToken  int       // id of <pkt>, or −1
	states    map[string]*buffer
	lens      []int64 // tokens per trace, read on the first Run
	nextState map[string]*buffer
}

// NewValidator compiles the evaluation graph for B rows of ctx tokens.
func NewValidator(eg *EvalGraph, store TraceStore, B, ctx int, maxTokens int64, unigram []float64, pktToken int, so ort.SessionOptions) (*Validator, error) {
	sess, err := ort.NewSession(eg.Model, so)
	if err != nil {
		return nil, err
	}
	v := &Validator{eg: eg, sess: sess, store: store, batch: B, ctx: ctx, maxTokens: maxTokens, unigram: unigram, pktToken: pktToken, states: map[string]*buffer{}, nextState: map[string]*buffer{}}
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

// Run evaluates the parameters (by name) on the validation traces. It stops
// with ctx's error when ctx is cancelled; progress, if not nil, is called
// after every window with the target tokens done and in all.
func (v *Validator) Run(ctx context.Context, params map[string]*buffer, progress func(done, total int64)) (ValResult, error) {
	B, T := v.batch, v.ctx
	type rowWalk struct {
		traces []int
		cur    int // index into traces
		off    int
		toks   []uint16
	}
	perTrace := int64(math.MaxInt64)
	if v.maxTokens > 0 {
		perTrace = max(v.maxTokens/int64(max(v.store.NumTraces(), 1)), int64(T))
	}
	rows := make([]rowWalk, B)
	var total int64
	if err := v.assign(B, perTrace, func(r, trace int) {
		rows[r].traces = append(rows[r].traces, trace)
		total += max(min(v.lens[trace]-1, perTrace), 0)
	}); err != nil {
		return ValResult{}, err
	}
	ids, err := ortgo.NewEmptyTensor[int64](ortgo.NewShape(int64(B), int64(T)))
	if err != nil {
		return ValResult{}, err
	}
	defer ids.Destroy()
	targets, err := ortgo.NewEmptyTensor[int64](ortgo.NewShape(int64(B), int64(T)))
	if err != nil {
		return ValResult{}, err
	}
	defer targets.Destroy()
	mask, err := newBuffer([]int64{int64(B), int64(T)}, nil)
	if err != nil {
		return ValResult{}, err
	}
	defer mask.Destroy()
	loss, err := newBuffer([]int64{1}, nil)
	if err != nil {
		return ValResult{}, err
	}
	defer loss.Destroy()
	for _, b := range v.states {
		b.ZeroContents()
	}
	var res ValResult
	nats, uni := 0.0, 0.0
	for {
		in, tg, mk := ids.GetData(), targets.GetData(), mask.GetData()
		clear(in)
		clear(tg)
		clear(mk)
		live := 0
		n := 0
		for r := range rows {
			row := &rows[r]
			if row.toks == nil || row.off+1 >= len(row.toks) || int64(row.off) >= perTrace {
				// Next trace for this row; zero its state.
				row.toks = nil
				for row.cur < len(row.traces) && row.toks == nil {
					t, err := v.store.TraceTokens(row.traces[row.cur])
					if err != nil {
						return res, fmt.Errorf("validation trace %d: %w", row.traces[row.cur], err)
					}
					row.cur++
					if len(t) >= 2 {
						row.toks, row.off = t, 0
					}
				}
				for _, s := range v.eg.StatesIn {
					d := v.states[s].GetData()
					per := len(d) / B
					clear(d[r*per : (r+1)*per])
				}
				if row.toks == nil {
					continue
				}
			}
			live++
			for t := 0; t < T; t++ {
				i := row.off + t
				if i+1 < len(row.toks) {
					in[r*T+t] = int64(row.toks[i])
					tg[r*T+t] = int64(row.toks[i+1])
					mk[r*T+t] = 1
					n++
					uni += v.unigram[row.toks[i+1]]
					if int(row.toks[i+1]) == v.pktToken {
						res.Packets++
					}
				} else if i < len(row.toks) {
					in[r*T+t] = int64(row.toks[i])
				}
			}
			row.off += T
		}
		if live == 0 {
			break
		}
		if n == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		inputs := make([]ortgo.Value, 0, len(v.sess.InputNames()))
		for _, name := range v.sess.InputNames() {
			switch name {
			case InIDs:
				inputs = append(inputs, ids)
			case InTargets:
				inputs = append(inputs, targets)
			case InMask:
				inputs = append(inputs, mask)
			default:
				if b, ok := v.states[name]; ok {
					inputs = append(inputs, b)
				} else if b, ok := params[name]; ok {
					inputs = append(inputs, b)
				} else {
					return res, fmt.Errorf("validation graph input %q has no value", name)
				}
			}
		}
		outOf := map[string]*buffer{}
		for i, s := range v.eg.StatesIn {
			outOf[v.eg.StatesOut[i]] = v.nextState[s]
		}
		outputs := make([]ortgo.Value, 0, len(v.sess.OutputNames()))
		for _, name := range v.sess.OutputNames() {
			if name == OutLoss {
				outputs = append(outputs, loss)
			} else if b, ok := outOf[name]; ok {
				outputs = append(outputs, b)
			} else {
				return res, fmt.Errorf("validation graph output %q has no buffer", name)
			}
		}
		if err := v.sess.RunValues(inputs, outputs); err != nil {
			return res, err
		}
		v.states, v.nextState = v.nextState, v.states
		nats += float64(loss.GetData()[0]) * float64(n)
		res.Tokens += int64(n)
		if progress != nil {
			progress(res.Tokens, total)
		}
	}
	if res.Tokens == 0 {
		return res, fmt.Errorf("the validation set has no tokens to predict")
	}
	res.Loss = nats / float64(res.Tokens)
	res.Unigram = uni / float64(res.Tokens)
	res.BitsPerPacket = math.NaN()
	if res.Packets > 0 {
		res.BitsPerPacket = nats / math.Ln2 / float64(res.Packets)
	}
	return res, nil
}
