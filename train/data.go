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
// real (0 past the end of a trace or segment), and Reset[r] says the row
// starts a new trace or segment, so its carried recurrent state must be zeroed
// before this window.
type Window struct {
	Inputs  []int64 // B×ctx, row-major
	Targets []int64 // B×ctx
	Mask    []float32
	Reset   []bool
	Tokens  int // real target tokens in this window
}

// unit is the stretch of a trace one row walks from a zero state: a whole
// trace, or one segment of it.
type unit struct {
	Trace, Start, End int
	Label             bool // read the trace's first token (its label) before Start
}

// rowState is one batch row's walk.
type rowState struct {
	Unit   int `json:"unit"`   // index into the loader's units, -1 before the first
	Offset int `json:"offset"` // position of the next input token, from the unit's start
	Trace  int `json:"trace"`  // random mode: the trace of the last window
	// Key seeds the address re-mapping of the unit the row is on (with
	// SetRemap); drawn when the row takes the unit, so a resumed run re-maps
	// it the same way.
	Key uint64 `json:"key,omitempty"`
}

// loaderState is everything needed to continue the data order exactly.
type loaderState struct {
	Mode    string     `json:"mode"`
	Seed    uint64     `json:"seed"`
	Segment int        `json:"segment,omitempty"`
	Epoch   int        `json:"epoch"`
	Next    int        `json:"next"` // next position in this epoch's permutation
	Rows    []rowState `json:"rows"`
	Draws   uint64     `json:"draws"`             // random mode: windows drawn so far
	Aligned bool       `json:"aligned,omitempty"` // segments start at packets, behind the label
	Fitted  bool       `json:"fitted,omitempty"`  // aligned segments end within the segment length
	Remap   bool       `json:"remap,omitempty"`   // units are read under re-mapped addresses
}

// Loader yields training windows.
//
// In stream mode (the default) each batch row walks units in the order of a
// seeded per-epoch permutation, window after window, carrying the recurrent
// state from one window to the next: the state a window starts from is the
// state of the same trace just before it. A unit is a whole trace or, with a
// segment length S > 0, a stretch of about S tokens of one (so that a short
// training budget still sees many traces instead of the first few of a
// dataset of long captures); a window never crosses a unit's end (its tail is
// masked) and the row's state is reset where a unit starts.
//
// Segments start at a packet (<pkt>, when the packet token is known) and are
// read behind the trace's first token, its label: every walk from a zero
// state then begins as generation does, with the label, so the model learns
// to condition on it rather than on whatever stretch of bytes a segment
// happened to begin with.
//
// In random mode each window is an independent random slice of a random trace
// starting from a zero state (transformer-style sampling, kept for
// comparison).
type Loader struct {
	store TraceStore
	batch int
	ctx   int
	units []unit
	st    loaderState
	cache map[int][]uint16 // the traces rows are currently on
	// labelled holds the label-prefixed copies of the units rows are on.
	labelled map[int][]uint16
	remap    func(toks []uint16, key uint64)
	// remapped holds each row's re-mapped copy of its unit.
	remapped map[int]remappedSpan
	// restart gives a segment behind its label as if it began the trace
	// (SetRestart); nil: the label followed by the segment's tokens.
	restart func(trace int, toks []uint16, start, stop int) []uint16
}

// SetRestart makes segments that start inside a trace read as restart gives
// them: the trace's label, then the packets whose <pkt> lies in [start,
// stop), for token layouts that code a packet against earlier ones
// (tokenizer.Restarter). Set it before the first Next.
func (l *Loader) SetRestart(restart func(trace int, toks []uint16, start, stop int) []uint16) {
	l.restart = restart
}

type remappedSpan struct {
	unit int
	key  uint64
	toks []uint16
}

// SetRemap makes every unit a row walks a copy re-written by remap with a key
// drawn for that walk (in practice tokenizer.RemapAddresses under a fresh
// Crypto-PAn key: each stretch of a capture is seen under new addresses). It
// needs stream mode with units that start at a packet or a trace, and must be
// set before Restore and the first Next.
func (l *Loader) SetRemap(remap func(toks []uint16, key uint64)) error {
	if l.st.Mode != "stream" || (l.st.Segment > 0 && !l.st.Aligned) {
		return fmt.Errorf("address re-mapping needs stream mode with segments that start at packets")
	}
	l.remap = remap
	l.st.Remap = true
	return nil
}

// NewLoader makes a loader over store for batch rows of ctx tokens. segment
// is the stream-mode unit length in tokens (0: whole traces); pktToken is
// the id of <pkt>, where segments start (−1: anywhere, without the label).
func NewLoader(store TraceStore, batch, ctx int, mode string, seed uint64, segment, pktToken int) (*Loader, error) {
	n := store.NumTraces()
	if n == 0 {
		return nil, fmt.Errorf("the dataset has no traces")
	}
	if mode != "stream" && mode != "random" {
		return nil, fmt.Errorf("unknown data mode %q (stream | random)", mode)
	}
	l := &Loader{store: store, batch: batch, ctx: ctx, cache: map[int][]uint16{}, labelled: map[int][]uint16{}, remapped: map[int]remappedSpan{}}
	for i := 0; i < n; i++ {
		if segment <= 0 {
			l.units = append(l.units, unit{Trace: i, Start: 0, End: -1})
			continue
		}
		toks, err := store.TraceTokens(i)
		if err != nil {
			return nil, fmt.Errorf("reading trace %d: %w", i, err)
		}
		if pktToken < 0 {
			for s := 0; s+1 < len(toks); s += segment {
				l.units = append(l.units, unit{Trace: i, Start: s, End: min(s+segment, len(toks))})
			}
			continue
		}
		// Cut at the last <pkt> that keeps the unit's inputs (the label
		// included) within segment tokens, so a segment that is a multiple
		// of ctx fills its windows instead of spilling a nearly empty one;
		// a stretch without any <pkt> is cut at the first one after it.
		start := 0
		for start+1 < len(toks) {
			limit := start + segment
			if start > 0 {
				limit-- // the label is read first
			}
			end := len(toks)
			if limit < len(toks) {
				end = limit
				for end > start && int(toks[end]) != pktToken {
					end--
				}
				if end == start {
					for end = limit; end < len(toks) && int(toks[end]) != pktToken; end++ {
					}
				}
			}
			l.units = append(l.units, unit{Trace: i, Start: start, End: end, Label: start > 0})
			start = end
		}
	}
	rows := make([]rowState, batch)
	for i := range rows {
		rows[i].Unit = -1
	}
	l.st = loaderState{Mode: mode, Seed: seed, Segment: segment, Rows: rows, Aligned: segment > 0 && pktToken >= 0, Fitted: segment > 0 && pktToken >= 0}
	return l, nil
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
	if st.Remap != l.st.Remap {
		return fmt.Errorf("data position in checkpoint is for a run with address re-mapping %v, this run has %v", st.Remap, l.st.Remap)
	}
	if len(st.Rows) != l.batch || st.Mode != l.st.Mode || st.Segment != l.st.Segment || st.Aligned != l.st.Aligned || st.Fitted != l.st.Fitted {
		return fmt.Errorf("data position in checkpoint is for %d rows in %s mode (segment %d), this run has %d rows in %s mode (segment %d)",
			len(st.Rows), st.Mode, st.Segment, l.batch, l.st.Mode, l.st.Segment)
	}
	l.st = st
	l.cache = map[int][]uint16{}
	l.labelled = map[int][]uint16{}
	l.remapped = map[int]remappedSpan{}
	return nil
}

func (l *Loader) permutation(epoch int) []int {
	r := rand.New(rand.NewPCG(l.st.Seed, uint64(epoch)+0x9e3779b97f4a7c15))
	return r.Perm(len(l.units))
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

// span returns the tokens a unit's windows read: inputs from [start, end)
// and targets up to end (the first token after the unit, if the trace has
// one), as a slice of the trace starting at the unit's start.
func (l *Loader) span(u int) ([]uint16, error) {
	un := l.units[u]
	toks, err := l.trace(un.Trace)
	if err != nil {
		return nil, err
	}
	end := len(toks)
	if un.End >= 0 {
		end = min(un.End+1, len(toks))
	}
	if un.Label {
		if c, ok := l.labelled[u]; ok {
			return c, nil
		}
		var c []uint16
		if l.restart != nil {
			stop := len(toks)
			if un.End >= 0 {
				stop = min(un.End, len(toks))
			}
			c = append(l.restart(un.Trace, toks, un.Start, stop), toks[stop:end]...)
		} else {
			c = make([]uint16, 0, end-un.Start+1)
			c = append(append(c, toks[0]), toks[un.Start:end]...)
		}
		l.labelled[u] = c
		return c, nil
	}
	return toks[un.Start:end], nil
}

// rowSpan is span for row r: the re-mapped copy when re-mapping is on.
func (l *Loader) rowSpan(r int) ([]uint16, error) {
	row := l.st.Rows[r]
	toks, err := l.span(row.Unit)
	if err != nil || l.remap == nil {
		return toks, err
	}
	if c, ok := l.remapped[r]; ok && c.unit == row.Unit && c.key == row.Key {
		return c.toks, nil
	}
	c := remappedSpan{unit: row.Unit, key: row.Key, toks: append([]uint16(nil), toks...)}
	l.remap(c.toks, c.key)
	l.remapped[r] = c
	return c.toks, nil
}

// unitKey is the re-mapping key of the walk that takes the unit at position
// next of epoch's permutation.
func (l *Loader) unitKey(epoch, next int) uint64 {
	return rand.New(rand.NewPCG(l.st.Seed^0x5bd1e995, uint64(epoch)<<32|uint64(next))).Uint64()
}

// nextUnit takes the next unit of the epoch permutation.
func (l *Loader) nextUnit() int {
	perm := l.permutation(l.st.Epoch)
	if l.st.Next >= len(perm) {
		l.st.Epoch++
		l.st.Next = 0
		perm = l.permutation(l.st.Epoch)
	}
	u := perm[l.st.Next]
	l.st.Next++
	return u
}

// inUse says whether another row still walks trace t (its cache entry stays).
func (l *Loader) inUse(t, except int) bool {
	for r, row := range l.st.Rows {
		if r != except && row.Unit >= 0 && l.units[row.Unit].Trace == t {
			return true
		}
	}
	return false
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
			delete(l.cache, row.Trace)
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
			if row.Unit >= 0 {
				if toks, err = l.rowSpan(r); err != nil {
					return nil, err
				}
			}
			if row.Unit < 0 || row.Offset+1 >= len(toks) {
				if row.Unit >= 0 && !l.inUse(l.units[row.Unit].Trace, r) {
					delete(l.cache, l.units[row.Unit].Trace)
				}
				if row.Unit >= 0 {
					delete(l.labelled, row.Unit)
				}
				// Skip units too short to hold a single target.
				for tries := 0; ; tries++ {
					row.Key = l.unitKey(l.st.Epoch, l.st.Next)
					row.Unit, row.Offset = l.nextUnit(), 0
					if toks, err = l.rowSpan(r); err != nil {
						return nil, err
					}
					if len(toks) >= 2 {
						break
					}
					if tries > 2*len(l.units) {
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
