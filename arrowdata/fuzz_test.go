package arrowdata_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/netssm/netssm/arrowdata"
)

// datasetSeeds are small dataset files the writer makes: one row group,
// three row groups, and no trace at all.
func datasetSeeds(t testing.TB) [][]byte {
	dir := t.TempDir()
	var seeds [][]byte
	for i, c := range []struct {
		traces, rgTokens int
	}{{2, arrowdata.RowGroupTokens}, {3, 40}, {0, arrowdata.RowGroupTokens}} {
		path := filepath.Join(dir, "seed"+string(rune('0'+i))+".parquet")
		w, err := arrowdata.Create(path, testSpec(t), arrowdata.WithRowGroupTokens(c.rgTokens))
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range makeTraces(c.traces) {
			if err := w.Write(tr); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzReadDataset opens arbitrary bytes as a dataset and reads every column
// of every row group (Traces), the token windows and single traces' tokens.
// Nothing may panic, no error may come from a recovered panic (a check
// should have refused the file first), every error names the file, and all
// Arrow memory is released.
func FuzzReadDataset(f *testing.F) {
	for _, b := range datasetSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		err := readWholeDataset(b, mem)
		if err != nil {
			if errors.Is(err, arrowdata.ErrPanicked) {
				t.Fatalf("no check caught what made the reader panic: %v", err)
			}
			if !containsName(err, "fuzz.parquet") {
				t.Fatalf("error does not name the file: %v", err)
			}
		}
		mem.AssertSize(t, 0)
	})
}

// readWholeDataset reads everything a dataset holds, every way the package
// offers, and returns the first error.
func readWholeDataset(b []byte, mem memory.Allocator) error {
	d, err := arrowdata.OpenBytes("fuzz.parquet", b, arrowdata.ReadAllocator(mem))
	if err != nil {
		return err
	}
	defer d.Close()
	for _, err := range d.Traces() {
		if err != nil {
			return err
		}
	}
	for _, err := range d.Windows(16) {
		if err != nil {
			return err
		}
	}
	for i := 0; i < min(d.NumTraces(), 64); i++ {
		if _, err := d.TraceTokens(i); err != nil {
			return err
		}
	}
	return nil
}

func containsName(err error, name string) bool { return strings.Contains(err.Error(), name) }

// TestBitFlippedDatasetIsAnErrorNotAPanic flips one bit in a byte of a
// dataset of several row groups, for every byte of the footer's last KiB (the
// lengths and offsets) and every seventh byte before: each read either
// succeeds or fails with an error naming the file, never through a
// recovered panic and never out of memory (a flip inside the stored Arrow
// schema makes arrow-go ask for 377 GB unless the reader drops it).
func TestBitFlippedDatasetIsAnErrorNotAPanic(t *testing.T) {
	orig := datasetSeeds(t)[1]
	refused, tried := 0, 0
	for i := 0; i < len(orig); i++ {
		if i < len(orig)-1024 && i%7 != 0 {
			continue
		}
		tried++
		b := append([]byte(nil), orig...)
		b[i] ^= 1 << (i % 8)
		err := readWholeDataset(b, memory.DefaultAllocator)
		if errors.Is(err, arrowdata.ErrPanicked) {
			t.Fatalf("bit %d of byte %d: %v", i%8, i, err)
		}
		if err != nil {
			refused++
			if !containsName(err, "fuzz.parquet") {
				t.Fatalf("bit %d of byte %d: error does not name the file: %v", i%8, i, err)
			}
		}
	}
	t.Logf("%d of %d flipped files refused", refused, tried)
}
