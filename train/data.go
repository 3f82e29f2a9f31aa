package train

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
)

// TraceStore gives random access to the token sequences of a dataset's
// traces. The arrowdata reader implements it without holding the dataset in
// memory; tests use a slice.
type TraceStore interface {
	NumTraces() int
	TraceTokens(i int) ([]uint16, error)
}

// Window is one batch of training windows: Inputs[r] are the ctx token ids fed
// to row r, Targets[r] the next tokens, Mask[r][t] is 1 where Targets[r][t] is
// real (0 past the end of a trace), and Reset[r] says the row starts a new
// trace, so its carried recurrent state must be zeroed before this window.
type Window struct {
	Inputs  []int64 // B×ctx, row-major
	Targets []int64 // B×ctx
	Mask    []float32
	Reset   []bool
	Tokens  int // real target tokens in this window
}

// rowState is one batch row's walk through the traces.
type rowState struct {
	Trace  int `json:"trace"`  // index into the store, -1 before the first trace
	Offset int `json:"offset"` // position of the next input token in the trace
}

// loaderState is everything needed to continue the data order exactly.
type loaderState struct {
	Mode  string     `json:"mode"`
	Seed  uint64     `json:"seed"`
	Epoch int        `json:"epoch"`
	Next  int        `json:"next"` // next position in this epoch's permutation
	Rows  []rowState `json:"rows"`
	Draws uint64     `json:"draws"` // random-window mode: windows drawn so far
}

// Loader yields training windows. In stream mode (the default) each batch row
// walks whole traces in order of a seeded per-epoch permutation, window after
// window, so the recurrent state carried from one window to the next is the
// state of the same trace; a window never crosses into the next trace (its
// tail is masked), and the row's state is reset where a trace starts. In
// random mode each window is an independent random slice of a random trace,
// starting from a zero state (the usual transformer-style sampling, kept for
// comparison).
type Loader struct {
	store TraceStore
	batch int
	ctx   int
	st    loaderState
	cache map[int][]uint16 // the traces rows are currently on
}

// NewLoader makes a loader over store for batch rows of ctx tokens.
func NewLoader(store TraceStore, batch, ctx int, mode string, seed uint64) (*Loader, error) {
	if store.NumTraces() == 0 {
		return nil, fmt.Errorf("the dataset has no traces")
	}
	if mode != "stream" && mode != "random" {
		return nil, fmt.Errorf("unknown data mode %q (stream | random)", mode)
	}
	rows := make([]rowState, batch)
	for i := range rows {
		rows[i].Trace = -1
	}
	return &Loader{store: store, batch: batch, ctx: ctx, st: loaderState{Mode: mode, Seed: seed, Rows: rows}, cache: map[int][]uint16{}}, nil
}

// State serialises the loader's position (for checkpoints).
func (l *Loader) State() json.RawMessage {
	b, _ := json.Marshal(l.st)
	return b
}

// Restore continues from a State.
func (l *Loader) Restore(raw json.RawMessage) error {
	var st loaderState
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("data position in checkpoint: %w", err)
	}
	if len(st.Rows) != l.batch || st.Mode != l.st.Mode {
		return fmt.Errorf("data position in checkpoint is for %d rows in %s mode, this run has %d rows in %s mode", len(st.Rows), st.Mode, l.batch, l.st.Mode)
	}
	l.st = st
	l.cache = map[int][]uint16{}
	return nil
}

func (l *Loader) permutation(epoch int) []int {
	r := rand.New(rand.NewPCG(l.st.Seed, uint64(epoch)+0x9e3779b97f4a7c15))
	return r.Perm(l.store.NumTraces())
}

func (l *Loader) trace(i int) ([]uint16, error) {
	if t, ok := l.cache[i]; ok {
		return t, nil
	}
	t, err := l.store.TraceTokens(i)
	if err != nil {
		return nil, fmt.Errorf("reading trace %d: %w", i, err)
	}
	l.cache[i] = t
	return t, nil
}

// nextTrace takes the next trace of the epoch permutation.
func (l *Loader) nextTrace() int {
	perm := l.permutation(l.st.Epoch)
	if l.st.Next >= len(perm) {
		l.st.Epoch++
		l.st.Next = 0
		perm = l.permutation(l.st.Epoch)
	}
	t := perm[l.st.Next]
	l.st.Next++
	return t
}

// Next fills the next batch of windows.
func (l *Loader) Next() (*Window, error) {
	B, T := l.batch, l.ctx
	w := &Window{Inputs: make([]int64, B*T), Targets: make([]int64, B*T), Mask: make([]float32, B*T), Reset: make([]bool, B)}
	for r := 0; r < B; r++ {
		row := &l.st.Rows[r]
		var toks []uint16
		var err error
		if l.st.Mode == "random" {
			rng := rand.New(rand.NewPCG(l.st.Seed, 1<<40+l.st.Draws))
			l.st.Draws++
			row.Trace = rng.IntN(l.store.NumTraces())
			if toks, err = l.trace(row.Trace); err != nil {
				return nil, err
			}
			row.Offset = 0
			if len(toks) > T+1 {
				row.Offset = rng.IntN(len(toks) - T)
			}
			w.Reset[r] = true
		} else {
			if row.Trace >= 0 {
				if toks, err = l.trace(row.Trace); err != nil {
					return nil, err
				}
			}
			if row.Trace < 0 || row.Offset+1 >= len(toks) {
				delete(l.cache, row.Trace)
				// Skip traces too short to hold a single target.
				for tries := 0; ; tries++ {
					row.Trace, row.Offset = l.nextTrace(), 0
					if toks, err = l.trace(row.Trace); err != nil {
						return nil, err
					}
					if len(toks) >= 2 {
						break
					}
					delete(l.cache, row.Trace)
					if tries > 2*l.store.NumTraces() {
						return nil, fmt.Errorf("no trace in the dataset has two or more tokens")
					}
				}
				w.Reset[r] = true
			}
		}
		for t := 0; t < T; t++ {
			i := row.Offset + t
			if i+1 < len(toks) {
				w.Inputs[r*T+t] = int64(toks[i])
				w.Targets[r*T+t] = int64(toks[i+1])
				w.Mask[r*T+t] = 1
				w.Tokens++
			} else if i < len(toks) {
				w.Inputs[r*T+t] = int64(toks[i])
			}
		}
		if l.st.Mode == "stream" {
			row.Offset += T
		}
	}
	return w, nil
}

// SliceStore is an in-memory TraceStore.
type SliceStore [][]uint16

func (s SliceStore) NumTraces() int                      { return len(s) }
func (s SliceStore) TraceTokens(i int) ([]uint16, error) { return s[i], nil }
