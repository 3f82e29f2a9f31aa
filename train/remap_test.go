package train

import (
	"slices"
	"testing"
)

// remapStore is three traces of label, then packets <pkt> followed by byte
// tokens, then <eos>; remapAdd adds a key-dependent offset to every token
// below 256, standing for an address re-mapping.
func remapStore() (SliceStore, int) {
	const pkt = 300
	var store SliceStore
	for tr, lens := range [][]int{{6, 5, 7, 4}, {6, 8}, {5, 5, 6, 7, 4}} {
		toks := []uint16{uint16(310 + tr)}
		for _, n := range lens {
			toks = append(toks, pkt)
			for k := range n {
				toks = append(toks, uint16(10*tr+k))
			}
		}
		store = append(store, append(toks, 301))
	}
	return store, pkt
}

func remapAdd(toks []uint16, key uint64) {
	for i, t := range toks {
		if t < 256 {
			toks[i] = (t + uint16(key%97) + 1) % 256
		}
	}
}

// TestRemappedWalksChangeOnlyBytesAndResumeExactly: with re-mapping on, the
// loader reads the same stretches with the same special tokens, only byte
// tokens change, one stretch is re-mapped under one key, the stored traces
// are untouched, and a restored loader yields the same windows.
func TestRemappedWalksChangeOnlyBytesAndResumeExactly(t *testing.T) {
	store, pkt := remapStore()
	orig := make(SliceStore, len(store))
	for i := range store {
		orig[i] = slices.Clone(store[i])
	}
	const B, ctx, seg = 2, 4, 8
	plain, _ := NewLoader(store, B, ctx, "stream", 7, seg, pkt)
	re, _ := NewLoader(store, B, ctx, "stream", 7, seg, pkt)
	if err := re.SetRemap(remapAdd); err != nil {
		t.Fatal(err)
	}
	changed := 0
	offset := make([]int64, B) // per row: the shift of its current stretch, −1 unknown
	for step := range 30 {
		wp, _ := plain.Next()
		wr, _ := re.Next()
		for r := range B {
			if wr.Reset[r] {
				offset[r] = -1
			}
		}
		for j := range wp.Inputs {
			p, r := wp.Inputs[j], wr.Inputs[j]
			if (p < 256) != (r < 256) || (p >= 256 && p != r) || wp.Mask[j] != wr.Mask[j] {
				t.Fatalf("step %d, position %d: %d became %d (only byte tokens may change)", step, j, p, r)
			}
			if p != r {
				changed++
			}
			if row := j / ctx; p < 256 && wp.Mask[j] == 1 {
				d := (r - p + 256) % 256
				if offset[row] >= 0 && d != offset[row] {
					t.Fatalf("step %d, row %d: one stretch re-mapped under two keys", step, row)
				}
				offset[row] = d
			}
		}
	}
	if changed == 0 {
		t.Fatal("re-mapping changed no token")
	}
	for i := range store {
		if !slices.Equal(store[i], orig[i]) {
			t.Fatalf("trace %d of the store was modified", i)
		}
	}

	saved := re.State()
	back, _ := NewLoader(store, B, ctx, "stream", 7, seg, pkt)
	if err := back.SetRemap(remapAdd); err != nil {
		t.Fatal(err)
	}
	if err := back.Restore(saved); err != nil {
		t.Fatal(err)
	}
	for step := range 30 {
		wa, _ := re.Next()
		wb, _ := back.Next()
		if !slices.Equal(wa.Inputs, wb.Inputs) || !slices.Equal(wa.Targets, wb.Targets) {
			t.Fatalf("window %d differs after restore", step)
		}
	}

	noRemap, _ := NewLoader(store, B, ctx, "stream", 7, seg, pkt)
	if err := noRemap.Restore(saved); err == nil {
		t.Fatal("a checkpoint of a re-mapping run restored into a loader without re-mapping")
	}
}

func TestRemapNeedsAlignedStreamWalks(t *testing.T) {
	store, pkt := remapStore()
	for _, c := range []struct {
		mode     string
		seg, pkt int
	}{{"random", 0, pkt}, {"stream", 8, -1}} {
		l, err := NewLoader(store, 1, 4, c.mode, 1, c.seg, c.pkt)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.SetRemap(remapAdd); err == nil {
			t.Errorf("%s mode, segment %d, <pkt> %d: re-mapping accepted", c.mode, c.seg, c.pkt)
		}
	}
	l, _ := NewLoader(store, 1, 4, "stream", 1, 0, pkt)
	if err := l.SetRemap(remapAdd); err != nil {
		t.Errorf("whole traces: %v", err)
	}
}
