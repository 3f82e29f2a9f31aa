package arrowdata_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/netssm/netssm/arrowdata"
	"github.com/netssm/netssm/tokenizer"
)

func testSpec(t testing.TB) tokenizer.Spec {
	s := tokenizer.DefaultSpec()
	s.Labels = []string{"dns", "web"}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// makeTraces builds n traces of varied lengths with recognisable tokens.
func makeTraces(n int) []*arrowdata.Trace {
	var out []*arrowdata.Trace
	for i := 0; i < n; i++ {
		np := 1 + i%7
		tr := &arrowdata.Trace{TraceID: "t" + string(rune('a'+i%26)) + string(rune('0'+i/26)), Label: []string{"dns", "web"}[i%2],
			Source: "s.pcap", SourceSHA256: "00", LinkType: "ethernet", StartUnixNs: int64(i) * 1e9}
		for p := 0; p < np; p++ {
			tr.PktOffsets = append(tr.PktOffsets, uint32(len(tr.Tokens)))
			tr.Tokens = append(tr.Tokens, tokenizer.TokPkt)
			for k := 0; k < 20+i%13; k++ {
				tr.Tokens = append(tr.Tokens, uint16((i*31+p*7+k)%256))
			}
			tr.TsNs = append(tr.TsNs, int64(p)*1000)
			tr.WireLen = append(tr.WireLen, uint32(60+p))
		}
		tr.Tokens = append(tr.Tokens, tokenizer.TokEOS)
		out = append(out, tr)
	}
	return out
}

func write(t *testing.T, path string, traces []*arrowdata.Trace, opts ...arrowdata.WriterOption) {
	t.Helper()
	w, err := arrowdata.Create(path, testSpec(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range traces {
		if err := w.Write(tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWriteReadRoundTripReleasesAllMemory(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	path := filepath.Join(t.TempDir(), "d.parquet")
	traces := makeTraces(100)
	write(t, path, traces, arrowdata.WithAllocator(mem), arrowdata.WithRowGroupTokens(500))
	ds, err := arrowdata.Open(path, arrowdata.ReadAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if ds.NumTraces() != 100 || ds.NumRowGroups() < 5 {
		t.Fatalf("%d traces in %d row groups", ds.NumTraces(), ds.NumRowGroups())
	}
	if s := ds.Spec(); s.VocabSize != testSpec(t).VocabSize || !slices.Equal(ds.Labels(), []string{"dns", "web"}) {
		t.Fatalf("spec from metadata: %+v", s)
	}
	i := 0
	for got, err := range ds.Traces() {
		if err != nil {
			t.Fatal(err)
		}
		want := traces[i]
		if got.TraceID != want.TraceID || got.Label != want.Label || got.StartUnixNs != want.StartUnixNs ||
			!slices.Equal(got.Tokens, want.Tokens) || !slices.Equal(got.PktOffsets, want.PktOffsets) ||
			!slices.Equal(got.TsNs, want.TsNs) || !slices.Equal(got.WireLen, want.WireLen) {
			t.Fatalf("trace %d differs", i)
		}
		i++
	}
	if i != 100 {
		t.Fatalf("iterated %d traces", i)
	}
	for _, j := range []int{99, 0, 50, 51, 3} { // random access across row groups
		toks, err := ds.TraceTokens(j)
		if err != nil || !slices.Equal(toks, traces[j].Tokens) {
			t.Fatalf("TraceTokens(%d): %v", j, err)
		}
	}
	if _, err := ds.TraceTokens(100); err == nil {
		t.Fatal("out-of-range trace accepted")
	}
}

func TestWindowsMakeEveryTokenATargetOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.parquet")
	traces := makeTraces(40)
	write(t, path, traces, arrowdata.WithRowGroupTokens(300))
	ds, err := arrowdata.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	const ctx = 16
	targets := make([]int, len(traces))
	for w, err := range ds.Windows(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if len(w.Tokens) > ctx+1 || len(w.Tokens) < 2 {
			t.Fatalf("window of %d tokens", len(w.Tokens))
		}
		if !slices.Equal(w.Tokens, traces[w.Trace].Tokens[w.Offset:w.Offset+len(w.Tokens)]) {
			t.Fatalf("window at trace %d offset %d has the wrong tokens", w.Trace, w.Offset)
		}
		targets[w.Trace] += len(w.Tokens) - 1
	}
	for i, tr := range traces {
		if targets[i] != len(tr.Tokens)-1 {
			t.Fatalf("trace %d: %d targets, want %d", i, targets[i], len(tr.Tokens)-1)
		}
	}
}

// streamHeapGrowth writes reps copies of a trace set in row groups of ≈64 k
// tokens, streams it as windows and returns the peak memory held through the
// reader's Arrow allocator (decoded pages and arrays) and the size of the
// token column.
func streamHeapGrowth(t *testing.T, reps int) (grew, rawBytes int) {
	path := filepath.Join(t.TempDir(), "d.parquet")
	traces := makeTraces(400)
	w, err := arrowdata.Create(path, testSpec(t), arrowdata.WithRowGroupTokens(1<<16))
	if err != nil {
		t.Fatal(err)
	}
	for rep := 0; rep < reps; rep++ {
		for _, tr := range traces {
			rawBytes += 2 * len(tr.Tokens)
			if err := w.Write(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	ds, err := arrowdata.Open(path, arrowdata.ReadAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	peak := 0
	n := 0
	for _, err := range ds.Windows(256) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		peak = max(peak, mem.CurrentAlloc())
	}
	ds.Close()
	mem.AssertSize(t, 0)
	if n < 1000 {
		t.Fatalf("only %d windows: too few to sample", n)
	}
	return peak, rawBytes
}

// TestReaderArrowMemoryDoesNotGrowWithDataset: streaming an 8× larger
// dataset holds no more Arrow memory. (pqarrow routes only part of its page
// buffers through the allocator, so this bounds that part; the command-line
// RSS figures bound the rest.)
func TestReaderArrowMemoryDoesNotGrowWithDataset(t *testing.T) {
	small, smallRaw := streamHeapGrowth(t, 8)
	large, largeRaw := streamHeapGrowth(t, 64)
	t.Logf("streaming %d KB of tokens: peak Arrow memory %d KB; %d KB of tokens: peak Arrow memory %d KB", smallRaw>>10, small>>10, largeRaw>>10, large>>10)
	if large > small+small/4 || large > largeRaw/4 {
		t.Fatalf("reader memory scales with the dataset (%d → %d bytes for %d → %d token bytes): not streaming", small, large, smallRaw, largeRaw)
	}
}

func TestFileAppearsOnlyWhenComplete(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.parquet")
	w, err := arrowdata.Create(path, testSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(makeTraces(1)[0])
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("dataset visible before Close")
	}
	w.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("Abort left %d files", len(ents))
	}
	bad := makeTraces(1)[0]
	bad.TsNs = bad.TsNs[:0]
	w, _ = arrowdata.Create(path, testSpec(t))
	if err := w.Write(bad); err == nil {
		t.Fatal("trace with mismatched per-packet columns accepted")
	}
	w.Abort()
}

func TestOpenRefusesFilesThatAreNotDatasets(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.parquet")
	os.WriteFile(junk, []byte("PAR1 not really"), 0o644)
	if _, err := arrowdata.Open(junk); err == nil {
		t.Fatal("junk accepted")
	}
	if _, err := arrowdata.Open(filepath.Join(dir, "missing.parquet")); err == nil {
		t.Fatal("missing file accepted")
	}
}
