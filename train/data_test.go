package train

import (
	"testing"
)

func seqStore(lengths ...int) SliceStore {
	var s SliceStore
	base := uint16(0)
	for _, n := range lengths {
		t := make([]uint16, n)
		for i := range t {
			t[i] = base + uint16(i)
		}
		s = append(s, t)
		base += 1000
	}
	return s
}

// TestStreamWindowsWalkWholeTraces checks that one row sees every token of
// every trace exactly once as a target, in order, with a reset exactly where
// a trace starts.
func TestStreamWindowsWalkWholeTraces(t *testing.T) {
	store := seqStore(10, 3, 25)
	l, err := NewLoader(store, 1, 4, "stream", 1, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint16]int{}
	resets := 0
	for step := 0; step < 20; step++ {
		w, _ := l.Next()
		if w.Reset[0] {
			if resets == 3 {
				break // the next epoch begins
			}
			resets++
		}
		for i := 0; i < 4; i++ {
			if w.Mask[i] == 1 {
				if w.Targets[i] != w.Inputs[i]+1 {
					t.Fatalf("step %d: target %d does not follow input %d", step, w.Targets[i], w.Inputs[i])
				}
				seen[uint16(w.Targets[i])]++
			}
		}
	}
	if resets != 3 {
		t.Errorf("resets = %d, want one per trace (3)", resets)
	}
	for _, tr := range store {
		for _, tok := range tr[1:] {
			if seen[tok] != 1 {
				t.Fatalf("token %d seen %d times as a target", tok, seen[tok])
			}
		}
	}
}

func TestLoaderRestoreContinuesExactly(t *testing.T) {
	store := seqStore(7, 30, 12, 5)
	a, _ := NewLoader(store, 2, 5, "stream", 42, 0, -1)
	for i := 0; i < 5; i++ {
		a.Next()
	}
	saved := a.State()
	b, _ := NewLoader(store, 2, 5, "stream", 42, 0, -1)
	if err := b.Restore(saved); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		wa, _ := a.Next()
		wb, _ := b.Next()
		for j := range wa.Inputs {
			if wa.Inputs[j] != wb.Inputs[j] || wa.Mask[j] != wb.Mask[j] {
				t.Fatalf("window %d differs after restore", i)
			}
		}
	}
}

func TestEmptyDatasetIsRefused(t *testing.T) {
	if _, err := NewLoader(SliceStore{}, 1, 4, "stream", 1, 0, -1); err == nil {
		t.Fatal("no error for an empty dataset")
	}
}

// TestSegmentsCoverEveryTokenOnceWithResets checks segment mode: one epoch
// makes every token (but each trace's first) a target exactly once, with a
// reset at the start of every segment.
func TestSegmentsCoverEveryTokenOnceWithResets(t *testing.T) {
	store := seqStore(23, 4, 41)
	const seg, ctx = 8, 3
	l, err := NewLoader(store, 1, ctx, "stream", 5, seg, -1)
	if err != nil {
		t.Fatal(err)
	}
	units := len(l.units)
	if units != 3+1+5 {
		t.Fatalf("%d units, want 9", units)
	}
	seen := map[int64]int{}
	resets := 0
	for step := 0; step < 200 && l.st.Epoch == 0; step++ {
		w, _ := l.Next()
		for r := 0; r < 1; r++ {
			if w.Reset[r] && l.st.Epoch == 0 {
				resets++
			}
			for i := 0; i < ctx; i++ {
				if w.Mask[r*ctx+i] == 1 && l.st.Epoch == 0 {
					seen[w.Targets[r*ctx+i]]++
				}
			}
		}
	}
	if resets != units {
		t.Errorf("%d resets, want one per segment (%d)", resets, units)
	}
	for _, tr := range store {
		for _, tok := range tr[1:] {
			if seen[int64(tok)] != 1 {
				t.Fatalf("token %d seen %d times as a target", tok, seen[int64(tok)])
			}
		}
	}
}

// TestAlignedSegmentsStartWithLabelAndPacket: with the packet token known,
// every walk from a zero state reads the trace's label, then a <pkt>; the
// segments still cover every token of every trace as a target.
func TestAlignedSegmentsStartWithLabelAndPacket(t *testing.T) {
	const pkt = 9
	var store SliceStore
	for tr, lens := range [][]int{{3, 5, 2, 7, 4, 4}, {6, 1, 8}, {2}} {
		toks := []uint16{uint16(100 + tr)} // label
		for _, n := range lens {
			toks = append(toks, pkt)
			for k := 0; k < n; k++ {
				toks = append(toks, uint16(10+len(toks)))
			}
		}
		store = append(store, append(toks, 99)) // <eos>
	}
	const seg, ctx = 7, 4
	l, err := NewLoader(store, 1, ctx, "stream", 3, seg, pkt)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[2]int]int{} // (trace label, token) as a target
	labelOf := func(w *Window) int { return int(w.Inputs[0]) }
	var cur int
	for step := 0; step < 400 && l.st.Epoch == 0; step++ {
		w, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		if l.st.Epoch > 0 {
			break
		}
		if w.Reset[0] {
			cur = labelOf(w)
			if cur < 100 || cur > 102 {
				t.Fatalf("a walk from a zero state starts with %d, not a label", cur)
			}
			if w.Mask[0] == 1 && w.Targets[0] != pkt {
				t.Fatalf("the label is followed by %d, not <pkt>", w.Targets[0])
			}
		}
		for i := 0; i < ctx; i++ {
			if w.Mask[i] == 1 {
				seen[[2]int{cur, int(w.Targets[i])}]++
			}
		}
	}
	for _, toks := range store {
		for _, tok := range toks[1:] {
			if tok != pkt && seen[[2]int{int(toks[0]), int(tok)}] != 1 {
				t.Fatalf("trace %d token %d a target %d times, want once", toks[0], tok, seen[[2]int{int(toks[0]), int(tok)}])
			}
		}
	}
	for _, u := range l.units {
		toks := store[u.Trace]
		if u.Start > 0 && int(toks[u.Start]) != pkt {
			t.Fatalf("segment of trace %d starts at token %d (%d), not at a <pkt>", u.Trace, u.Start, toks[u.Start])
		}
	}
}

// TestAlignedSegmentsFitTheirLength: a unit's inputs, its label included,
// stay within the segment length wherever a <pkt> allows it, so a segment of
// k·ctx tokens fills k windows instead of spilling a nearly empty one; a
// packet longer than the segment becomes a unit of its own.
func TestAlignedSegmentsFitTheirLength(t *testing.T) {
	const pkt, seg = 9, 8
	toks := []uint16{100} // label
	for _, n := range []int{3, 2, 4, 1, 12, 2, 2, 5} {
		toks = append(toks, pkt)
		for k := 0; k < n; k++ {
			toks = append(toks, 50)
		}
	}
	l, err := NewLoader(SliceStore{toks}, 1, 4, "stream", 1, seg, pkt)
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	for _, u := range l.units {
		if u.Start != next {
			t.Fatalf("unit %+v does not start where the previous ended (%d)", u, next)
		}
		next = u.End
		inputs := u.End - u.Start
		if u.Label {
			inputs++
		}
		long := u.End-u.Start == 13 // the 12-byte packet with its <pkt>
		if inputs > seg && !long {
			t.Errorf("unit %+v reads %d inputs, more than the segment %d", u, inputs, seg)
		}
		if u.Start > 0 && int(toks[u.Start]) != pkt {
			t.Errorf("unit %+v starts at %d, not <pkt>", u, toks[u.Start])
		}
	}
	if next != len(toks) {
		t.Fatalf("units end at %d of %d tokens", next, len(toks))
	}
}
