package infer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/netssm/netssm/infer/sampling"
)

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func baseJob() Job {
	return Job{
		Traces:     6,
		Batch:      2,
		Seed:       1,
		Prompt:     []int{fakeVocab.Labels[0]},
		Limits:     Limits{Packets: 20},
		Sampling:   sampling.Default(),
		Vocab:      fakeVocab,
		NewGrammar: newFakeGrammar,
		Timing:     BucketTiming{Edges: LogBuckets(8, time.Microsecond, time.Second)},
		Start:      epoch,
	}
}

func generate(t *testing.T, m Model, sink Sink, job Job) Stats {
	t.Helper()
	st, err := Generate(context.Background(), m, sink, job)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func validFakePacket(p []byte) bool {
	if len(p) != len(fakeHeader) {
		return false
	}
	for i, b := range p {
		if !fakeFree[i] && b != fakeHeader[i] {
			return false
		}
	}
	return true
}

// paperFiles decodes traces × tokens at the given batch size with the
// paper sampling preset and returns the files written, by trace.
func paperFiles(t *testing.T, m Model, traces, batch, tokens int) map[int]*bytes.Buffer {
	t.Helper()
	s := newMemSink()
	job := baseJob()
	job.Traces, job.Batch = traces, batch
	job.Limits = Limits{Tokens: tokens}
	job.Sampling = sampling.Paper()
	if _, err := Generate(context.Background(), m, s, job); err != nil {
		t.Fatal(err)
	}
	return s.files
}

func sameFiles(t *testing.T, a, b map[int]*bytes.Buffer, what string) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d traces vs %d", what, len(a), len(b))
	}
	for tr, fa := range a {
		fb, ok := b[tr]
		if !ok {
			t.Fatalf("%s: trace %d missing", what, tr)
		}
		if !bytes.Equal(fa.Bytes(), fb.Bytes()) {
			t.Errorf("%s: trace %d differs (%d vs %d bytes)", what, tr, fa.Len(), fb.Len())
		}
	}
}

func TestSameSeedGivesIdenticalFiles(t *testing.T) {
	a, b := newMemSink(), newMemSink()
	generate(t, &markovModel{noise: 4}, a, baseJob())
	generate(t, &markovModel{noise: 4}, b, baseJob())
	sameFiles(t, a.files, b.files, "same seed")
	c := newMemSink()
	job := baseJob()
	job.Seed = 2
	generate(t, &markovModel{noise: 4}, c, job)
	if bytes.Equal(a.files[0].Bytes(), c.files[0].Bytes()) {
		t.Error("seeds 1 and 2 gave the same trace 0")
	}
}

func TestBatchSizeDoesNotChangeTraces(t *testing.T) {
	var ref map[int]*bytes.Buffer
	for _, b := range []int{1, 3, 4, 16} {
		s := newMemSink()
		job := baseJob()
		job.Batch = b
		job.Sampling = sampling.Paper()
		job.Sampling.RepetitionPenalty = 1.2
		job.Sampling.RepetitionWindow = 30
		generate(t, &markovModel{noise: 4}, s, job)
		if ref == nil {
			ref = s.files
			continue
		}
		sameFiles(t, ref, s.files, fmt.Sprintf("batch 1 vs %d", b))
	}
}

func TestShardsUnionEqualsUnshardedJob(t *testing.T) {
	dir := t.TempDir()
	run := func(name string, sh Shard) {
		out := filepath.Join(dir, name)
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		job := baseJob()
		job.Traces = 7
		job.Shard = sh
		job.Batch = 3
		generate(t, &markovModel{noise: 4}, &PcapSink{Path: out, Dir: true}, job)
	}
	run("all", Shard{})
	run("s0", Shard{0, 2})
	run("s1", Shard{1, 2})
	all, _ := filepath.Glob(filepath.Join(dir, "all", "*.pcap"))
	if len(all) != 7 {
		t.Fatalf("unsharded job wrote %d files, want 7", len(all))
	}
	seen := 0
	for _, f := range all {
		want, _ := os.ReadFile(f)
		found := 0
		for _, sh := range []string{"s0", "s1"} {
			got, err := os.ReadFile(filepath.Join(dir, sh, filepath.Base(f)))
			if err == nil {
				found++
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs between shard %s and the unsharded job", filepath.Base(f), sh)
				}
			}
		}
		if found != 1 {
			t.Errorf("%s is in %d shards, want exactly 1", filepath.Base(f), found)
		}
		seen += found
	}
	for _, sh := range []string{"s0", "s1"} {
		files, _ := filepath.Glob(filepath.Join(dir, sh, "*"))
		seen -= len(files)
	}
	if seen != 0 {
		t.Errorf("shards hold %d files the unsharded job does not", -seen)
	}
}

func TestShardTracesAreStrided(t *testing.T) {
	if got := (Shard{1, 3}).Traces(8); !slices.Equal(got, []int{1, 4, 7}) {
		t.Errorf("shard 1/3 of 8: %v", got)
	}
	if got := (Shard{}).Traces(3); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("whole job of 3: %v", got)
	}
	for _, bad := range []string{"2/2", "-1/2", "0/0", "1", "a/b", "0/2x"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
	if sh, err := ParseShard("3/8"); err != nil || sh != (Shard{3, 8}) {
		t.Errorf("ParseShard(3/8) = %v, %v", sh, err)
	}
}

func TestConstrainedDecodingOnlyWritesWellFormedPackets(t *testing.T) {
	count := func(grammar bool) (valid, total int) {
		s := newMemSink()
		job := baseJob()
		job.Sampling.Temperature = 2 // noisy: the model alone often breaks headers
		if !grammar {
			job.NewGrammar = nil
		}
		generate(t, &markovModel{noise: 12}, s, job)
		for _, pkts := range s.packets {
			for _, p := range pkts {
				total++
				if validFakePacket(p) {
					valid++
				}
			}
		}
		return
	}
	v, n := count(true)
	if n == 0 || v != n {
		t.Errorf("constrained: %d of %d packets well-formed, want all", v, n)
	}
	uv, un := count(false)
	t.Logf("well-formed packets: constrained %d/%d, unconstrained %d/%d", v, n, uv, un)
	if un > 0 && uv == un {
		t.Errorf("unconstrained decoding of a noisy model produced only valid packets (%d): the test cannot tell the mask works", un)
	}
}

func TestPacketLimitEndsEachTrace(t *testing.T) {
	s := newMemSink()
	job := baseJob()
	job.Limits = Limits{Packets: 13}
	m := &markovModel{noise: 2, noEOS: true} // every trace reaches the limit
	st := generate(t, m, s, job)
	if st.Traces != job.Traces || len(s.files) != job.Traces {
		t.Fatalf("%d traces finished, %d files, want %d", st.Traces, len(s.files), job.Traces)
	}
	for tr, p := range s.packets {
		if len(p) != 13 {
			t.Errorf("trace %d has %d packets, want 13", tr, len(p))
		}
	}
}

func TestTokenLimitEndsEachTrace(t *testing.T) {
	s := newMemSink()
	job := baseJob()
	job.Limits = Limits{Tokens: 100}
	st := generate(t, &markovModel{noise: 2, noEOS: true}, s, job)
	if st.Tokens != 100*job.Traces {
		t.Errorf("generated %d tokens, want %d", st.Tokens, 100*job.Traces)
	}
	// 100 tokens = 3 packets of 30 tokens + a cut one: dropped as incomplete.
	for tr, p := range s.packets {
		if len(p) != 3 {
			t.Errorf("trace %d: %d packets, want 3", tr, len(p))
		}
	}
	if st.Truncated != job.Traces {
		t.Errorf("%d packets counted as truncated, want %d", st.Truncated, job.Traces)
	}
}

func TestDurationLimitBoundsTraceTime(t *testing.T) {
	s := newMemSink()
	job := baseJob()
	job.Limits = Limits{Duration: 50 * time.Millisecond}
	generate(t, &markovModel{noise: 1}, s, job)
	for tr, ts := range s.times {
		for _, x := range ts {
			if d := x.Sub(epoch); d > job.Limits.Duration || d < 0 {
				t.Fatalf("trace %d has a packet at %v, outside [0, %v]", tr, d, job.Limits.Duration)
			}
		}
		if !slices.IsSortedFunc(ts, func(a, b time.Time) int { return a.Compare(b) }) {
			t.Errorf("trace %d: timestamps go back in time", tr)
		}
	}
	if len(s.files) != job.Traces {
		t.Errorf("%d traces written, want %d", len(s.files), job.Traces)
	}
}

// Once the queue is empty, the traces still running move into smaller
// batches as the others end (halving at most), and write the same files as
// traces decoded one at a time.
func TestFinishedTracesLeaveTheBatch(t *testing.T) {
	job := baseJob()
	job.Traces, job.Limits = 16, Limits{Packets: 1000}
	job.Sampling.Temperature = 3 // <eos> often wins: traces of many lengths
	one, all := newMemSink(), newMemSink()
	job.Batch = 1
	generate(t, &markovModel{noise: 4}, one, job)
	m := &markovModel{noise: 4}
	job.Batch = 16
	generate(t, m, all, job)
	sameFiles(t, one.files, all.files, "batch 1 vs 16 that shrinks")
	if len(m.sizes) < 3 || m.sizes[0] != 16 {
		t.Fatalf("batch sizes %v: want 16 and then at least two smaller ones", m.sizes)
	}
	for k := 1; k < len(m.sizes); k++ {
		if 2*m.sizes[k] > m.sizes[k-1] || m.sizes[k] < 1 {
			t.Errorf("batch sizes %v: batch %d is not at most half the one before", m.sizes, k)
		}
	}
}

func TestEOSEndsTraceAndSlotStartsNext(t *testing.T) {
	s := newMemSink()
	job := baseJob()
	job.Traces = 12
	job.Batch = 3
	job.Limits = Limits{Packets: 1000}
	job.Sampling.Temperature = 3 // <eos> often wins at a packet end
	st := generate(t, &markovModel{noise: 0}, s, job)
	if st.EOS == 0 {
		t.Fatal("no trace ended with <eos>; the test needs some")
	}
	if st.Traces != 12 || len(s.files) != 12 {
		t.Errorf("%d traces finished, %d files, want 12", st.Traces, len(s.files))
	}
}

// failingStore is a disk that fills up after limit bytes.
type failingStore struct {
	data    []byte
	limit   int
	partial bool
}

var errDiskFull = errors.New("no space left on device")

func (f *failingStore) Write(p []byte) (int, error) {
	room := f.limit - len(f.data)
	if room < len(p) {
		f.data = append(f.data, p[:max(room, 0)]...)
		return max(room, 0), errDiskFull
	}
	f.data = append(f.data, p...)
	return len(p), nil
}
func (f *failingStore) Truncate(n int64) error { f.data = f.data[:n]; return nil }
func (f *failingStore) Commit() error          { return errors.New("a cut trace was committed as complete") }
func (f *failingStore) CommitPartial() (string, error) {
	f.partial = true
	return "out.pcap.partial", nil
}
func (f *failingStore) Abort() {}

// readRawPcap parses a classic pcap and returns its records' data, failing
// on any truncated record.
func readRawPcap(b []byte) ([][]byte, error) {
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b23c4d {
		return nil, errors.New("no pcap header")
	}
	var recs [][]byte
	for off := 24; off < len(b); {
		if off+16 > len(b) {
			return nil, fmt.Errorf("truncated record header at %d", off)
		}
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		if off+16+n > len(b) {
			return nil, fmt.Errorf("truncated record at %d", off)
		}
		recs = append(recs, b[off+16:off+16+n])
		off += 16 + n
	}
	return recs, nil
}

func TestDiskFullLeavesValidPcapAndCountsPackets(t *testing.T) {
	store := &failingStore{limit: 150_000}
	sink := &PcapSink{Path: "out.pcap", create: func(string) (traceStore, error) { return store, nil }}
	job := baseJob()
	job.Traces, job.Batch = 1, 1
	job.Limits = Limits{Packets: 100_000}
	_, err := Generate(context.Background(), &markovModel{noise: 2, noEOS: true}, sink, job)
	var we *WriteError
	if !errors.As(err, &we) || !errors.Is(err, errDiskFull) {
		t.Fatalf("got %v, want a WriteError wrapping the disk error", err)
	}
	if !store.partial || we.Kept != "out.pcap.partial" {
		t.Errorf("the cut pcap was not published as partial (kept %q)", we.Kept)
	}
	recs, perr := readRawPcap(store.data)
	if perr != nil {
		t.Fatalf("partial pcap is not valid: %v", perr)
	}
	if len(recs) != we.Packets || we.Packets == 0 {
		t.Errorf("file holds %d packets, error says %d", len(recs), we.Packets)
	}
	if want := fmt.Sprintf("first %d packets are kept in out.pcap.partial", we.Packets); !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestPcapSinkPublishesOnlyClosedTraces(t *testing.T) {
	dir := t.TempDir()
	sink := &PcapSink{Path: filepath.Join(dir, "one.pcap")}
	tf, err := sink.OpenTrace(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tf.WritePacket(epoch, fakeHeader); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sink.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pcap visible before its trace closed: %v", err)
	}
	if err := tf.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sink.Path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := readRawPcap(b)
	if err != nil || len(recs) != 1 || !bytes.Equal(recs[0], fakeHeader) {
		t.Fatalf("read back %d records (%v)", len(recs), err)
	}
}

// Memory is constant in generated length: generating 10× more tokens
// allocates (almost) nothing more.
func TestMemoryConstantInGeneratedLength(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 220k tokens")
	}
	measure := func(tokens int) (alloc uint64, peak uint64) {
		job := baseJob()
		job.Traces, job.Batch = 1, 1
		job.Limits = Limits{Tokens: tokens}
		job.Sampling = sampling.Paper()
		var ms runtime.MemStats
		job.Progress = func(s Stats) {
			if s.Steps%5000 == 1 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		st := generate(t, &markovModel{noise: 2, noEOS: true}, &discardSink{}, job)
		runtime.ReadMemStats(&after)
		if st.Tokens != tokens {
			t.Fatalf("generated %d tokens, want %d", st.Tokens, tokens)
		}
		return after.TotalAlloc - before.TotalAlloc, peak
	}
	a10, p10 := measure(20_000)
	a200, p200 := measure(200_000)
	t.Logf("allocated: %d B for 20k tokens, %d B for 200k; heap in use: %d vs %d", a10, a200, p10, p200)
	if a200 > a10+64<<10 {
		t.Errorf("200k tokens allocate %d B, 20k %d B: allocation grows with length", a200, a10)
	}
}

func TestPromptOutsideGrammarIsAnError(t *testing.T) {
	job := baseJob()
	job.Prompt = []int{fakeVocab.Labels[0], 0x45} // a byte before <pkt>
	_, err := Generate(context.Background(), &markovModel{}, newMemSink(), job)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("prompt")) {
		t.Fatalf("got %v, want an error about the prompt", err)
	}
}

func TestIgnoreEOSRunsEveryTraceToItsLimit(t *testing.T) {
	for _, grammar := range []bool{true, false} {
		s := newMemSink()
		job := baseJob()
		job.Sampling.Temperature = 3 // <eos> would often win at a packet end
		job.Limits = Limits{Packets: 25}
		job.IgnoreEOS = true
		if !grammar {
			job.NewGrammar = nil
		}
		st := generate(t, &markovModel{noise: 0}, s, job)
		if st.EOS != 0 {
			t.Errorf("grammar %v: %d traces ended by <eos>", grammar, st.EOS)
		}
		if grammar {
			for tr, p := range s.packets {
				if len(p) != 25 {
					t.Errorf("trace %d: %d packets, want 25", tr, len(p))
				}
			}
		}
	}
}

func TestJobWithoutLimitIsRejected(t *testing.T) {
	job := baseJob()
	job.Limits = Limits{}
	if _, err := Generate(context.Background(), &markovModel{}, newMemSink(), job); err == nil {
		t.Fatal("a job without limits was accepted")
	}
}

func TestBucketGapsStayInsideTheirBucket(t *testing.T) {
	edges := LogBuckets(64, time.Microsecond, 60*time.Second)
	if err := validateEdges(edges); err != nil {
		t.Fatal(err)
	}
	bt := BucketTiming{Edges: edges}
	rng := sampling.TraceRNG(3, 4)
	for k := 0; k < 64; k++ {
		for i := 0; i < 50; i++ {
			g := bt.Gap(k, rng)
			if g < edges[k] || g > edges[k+1] {
				t.Fatalf("bucket %d [%v, %v) gave %v", k, edges[k], edges[k+1], g)
			}
		}
	}
	q := EmpiricalTiming{Quantiles: []time.Duration{time.Millisecond, 2 * time.Millisecond, 10 * time.Millisecond}}
	for i := 0; i < 100; i++ {
		if g := q.Gap(-1, rng); g < time.Millisecond || g > 10*time.Millisecond {
			t.Fatalf("empirical gap %v outside its quantiles", g)
		}
	}
}

func BenchmarkGenerateFake(b *testing.B) {
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			job := baseJob()
			job.Traces, job.Batch = batch, batch
			job.Limits = Limits{Tokens: 2000}
			job.Sampling = sampling.Paper()
			tokens := 0
			for b.Loop() {
				st, err := Generate(context.Background(), &markovModel{noise: 2, noEOS: true}, &discardSink{}, job)
				if err != nil {
					b.Fatal(err)
				}
				tokens += st.Tokens
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

var _ io.Writer = (*failingStore)(nil)

// labelBlindModel is markovModel with the prompt ignored: every label
// starts from the same state, as a model that has not learnt its labels.
type labelBlindModel struct{ markovModel }

func (m *labelBlindModel) Prefill([]int) ([]float32, State, error) {
	return m.markovModel.Prefill(nil)
}

// TestTwoLabelsNeverShareARandomStream: even a model that ignores its
// label gives different traces for two labels under one seed, because the
// prompt is part of every trace's random stream (sampling.PromptSeed).
func TestTwoLabelsNeverShareARandomStream(t *testing.T) {
	files := func(label int) map[int]*bytes.Buffer {
		s := newMemSink()
		job := baseJob()
		job.Prompt = []int{label}
		generate(t, &labelBlindModel{markovModel{noise: 4}}, s, job)
		return s.files
	}
	a, b := files(fakeVocab.Labels[0]), files(fakeVocab.Labels[1])
	for tr := range a {
		if bytes.Equal(a[tr].Bytes(), b[tr].Bytes()) {
			t.Errorf("trace %d is byte-identical under two labels", tr)
		}
	}
	sameFiles(t, a, files(fakeVocab.Labels[0]), "same label, same seed")
}
