package infer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/netssm/netssm/export"
	"github.com/netssm/netssm/infer/sampling"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort/orttest"
	"github.com/netssm/netssm/tokenizer"
)

// writeTinyBundle exports a tiny Mamba-2 with random weights and the default
// tokenizer spec (timing on, two labels) to dir/bundle.
func writeTinyBundle(t testing.TB, dir string) string {
	t.Helper()
	spec := tokenizer.DefaultSpec()
	spec.Labels = []string{"web", "dns"}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	c, err := model.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithVocab(model.PadVocab(spec.VocabSize))
	timing, _ := json.Marshal(export.TimingTables{InterArrivalNs: map[string][]int64{"web": {1000, 50_000, 2_000_000}}})
	path := filepath.Join(dir, "bundle")
	if _, err := export.Write(path, export.Info{Config: c, Tokenizer: raw, Labels: spec.Labels, Timing: timing}, model.InitParams(c, 11), export.Options{}); err != nil {
		t.Fatal(err)
	}
	return path
}

// packetShape is what a decoder makes of one generated packet.
type packetShape struct{ wellFormed, tcpUDP bool }

// readShapes decodes every packet of a pcap with gopacket.
func readShapes(t *testing.T, path string) []packetShape {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var shapes []packetShape
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return shapes
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		first := layers.LayerTypeIPv4
		if len(data) > 0 && data[0]>>4 == 6 {
			first = layers.LayerTypeIPv6
		}
		p := gopacket.NewPacket(data, first, gopacket.Default)
		ok := p.ErrorLayer() == nil && p.NetworkLayer() != nil && len(data) > 0 && (data[0]>>4 == 4 || data[0]>>4 == 6)
		if !ok && testing.Verbose() {
			t.Logf("%s: not well-formed: % x: %v", filepath.Base(path), data, p.ErrorLayer())
		}
		l4 := p.Layer(layers.LayerTypeTCP) != nil || p.Layer(layers.LayerTypeUDP) != nil
		shapes = append(shapes, packetShape{wellFormed: ok, tcpUDP: ok && l4})
	}
}

// grammarCheckSink passes packets on to a PcapSink after checking each
// against the tokenizer's packet layout: the grammar's contract is that a
// constrained packet holds exactly its complete IP and L4 headers (and the
// kept payload), no more, no less.
type grammarCheckSink struct {
	*PcapSink
	spec     *tokenizer.Spec
	complete int
	total    int
}

type grammarCheckTrace struct {
	TraceFile
	s *grammarCheckSink
}

func (g *grammarCheckSink) OpenTrace(t int) (TraceFile, error) {
	tf, err := g.PcapSink.OpenTrace(t)
	return grammarCheckTrace{tf, g}, err
}

func (g grammarCheckTrace) WritePacket(ts time.Time, ip []byte) error {
	l := g.s.spec.Keep(ip)
	g.s.total++
	if l.Complete && !l.Malformed && l.Keep == len(ip) && (l.Version == 4 || l.Version == 6) {
		g.s.complete++
	}
	return g.TraceFile.WritePacket(ts, ip)
}

// On a random-weight model, structure-aware decoding makes every packet a
// complete IP packet by the tokenizer's layout rules (version, IHL, L4 header
// length, kept payload), while unconstrained decoding makes almost none. The
// verdict of gopacket (whose application decoders also judge the random
// payload bytes) and the TCP/UDP share are logged; the well-formedness rules
// themselves are tested in the tokenizer package against gopacket and tshark.
func TestBundleConstrainedPacketsAreWellFormed(t *testing.T) {
	orttest.Init(t)
	dir := t.TempDir()
	b, err := OpenBundle(writeTinyBundle(t, dir), ortOptions())
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		complete, parsed, tcpUDP, n int
	}
	run := func(constrain bool) result {
		out := filepath.Join(dir, map[bool]string{true: "on", false: "off"}[constrain])
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		prompt, err := b.Prompt("web", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		job := Job{Traces: 16, Batch: 8, Seed: 5, Prompt: prompt, Limits: Limits{Packets: 30, Tokens: 3000},
			Sampling: sampling.Default(), Vocab: b.Vocab, Timing: b.Timing("web"), Start: epoch}
		if constrain {
			job.NewGrammar = b.NewGrammar
		}
		sink := &grammarCheckSink{PcapSink: &PcapSink{Path: out, Dir: true, NewWriter: b.NewPacketWriter}, spec: &b.Spec}
		if _, err := Generate(context.Background(), b.Model, sink, job); err != nil {
			t.Fatal(err)
		}
		r := result{complete: sink.complete, n: sink.total}
		files, _ := filepath.Glob(filepath.Join(out, "*.pcap"))
		for _, f := range files {
			for _, s := range readShapes(t, f) {
				if s.wellFormed {
					r.parsed++
				}
				if s.tcpUDP {
					r.tcpUDP++
				}
			}
		}
		return r
	}
	pct := func(a, n int) float64 { return 100 * float64(a) / float64(max(n, 1)) }
	on, off := run(true), run(false)
	for _, c := range []struct {
		name string
		r    result
	}{{"constrained", on}, {"unconstrained", off}} {
		t.Logf("%s: %d packets; complete by the tokenizer's layout %.1f%%, parsed by gopacket %.1f%%, IP+TCP/UDP %.1f%%",
			c.name, c.r.n, pct(c.r.complete, c.r.n), pct(c.r.parsed, c.r.n), pct(c.r.tcpUDP, c.r.n))
	}
	if on.n == 0 || on.complete != on.n {
		t.Errorf("constrained decoding: %d of %d packets complete, want all", on.complete, on.n)
	}
	if off.n > 0 && pct(off.complete, off.n) >= 50 {
		t.Errorf("unconstrained decoding of a random model gave %d of %d complete packets: the test cannot see the mask work", off.complete, off.n)
	}
}

func TestOpenBundleNamesTamperedFile(t *testing.T) {
	orttest.Init(t)
	path := writeTinyBundle(t, t.TempDir())
	step := filepath.Join(path, export.StepFile)
	data, err := os.ReadFile(step)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(step, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = OpenBundle(path, ortOptions())
	if err == nil || !strings.Contains(err.Error(), export.StepFile) {
		t.Fatalf("got %v, want an error naming %s", err, export.StepFile)
	}
}

func TestUnknownLabelListsKnownOnes(t *testing.T) {
	orttest.Init(t)
	b, err := OpenBundle(writeTinyBundle(t, t.TempDir()), ortOptions())
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Prompt("video", "", 0)
	if err == nil || !strings.Contains(err.Error(), "web, dns") {
		t.Fatalf("got %v, want the known labels listed", err)
	}
}

func TestUnreadablePromptCaptureIsAnError(t *testing.T) {
	orttest.Init(t)
	dir := t.TempDir()
	b, err := OpenBundle(writeTinyBundle(t, dir), ortOptions())
	if err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pcap")
	if err := os.WriteFile(junk, []byte("not a capture at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{junk, filepath.Join(dir, "missing.pcap")} {
		if _, err := b.Prompt("web", p, 4); err == nil || !strings.Contains(err.Error(), filepath.Base(p)) {
			t.Errorf("prompt %s: got %v, want an error naming the file", filepath.Base(p), err)
		}
	}
}

// A prompt from a real capture: its packets are encoded with the bundle's
// spec and the grammar accepts them, so generation continues after them.
func TestPromptFromCaptureContinuesGeneration(t *testing.T) {
	orttest.Init(t)
	dir := t.TempDir()
	b, err := OpenBundle(writeTinyBundle(t, dir), ortOptions())
	if err != nil {
		t.Fatal(err)
	}
	// A capture made by the generator itself: three constrained packets.
	first := filepath.Join(dir, "first.pcap")
	noEOS := func() Grammar { return withoutEOS{b.NewGrammar(), b.Vocab.EOS} }
	job := Job{Traces: 1, Batch: 1, Seed: 9, Prompt: []int{b.Vocab.Labels[0]}, Limits: Limits{Packets: 3},
		Sampling: sampling.Default(), Vocab: b.Vocab, NewGrammar: noEOS, Timing: b.Timing("web"), Start: epoch}
	if _, err := Generate(context.Background(), b.Model, &PcapSink{Path: first, NewWriter: b.NewPacketWriter}, job); err != nil {
		t.Fatal(err)
	}
	prompt, err := b.Prompt("web", first, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(prompt) < 1+3*22 || prompt[0] != b.Vocab.Labels[0] {
		t.Fatalf("prompt of %d tokens does not hold a label and three packets", len(prompt))
	}
	job.Prompt = prompt
	st, err := Generate(context.Background(), b.Model, &PcapSink{Path: filepath.Join(dir, "next.pcap"), NewWriter: b.NewPacketWriter}, job)
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets == 0 && st.EOS == 0 {
		t.Error("nothing generated after the prompt")
	}
}

// withoutEOS is a grammar that never lets a trace end by itself.
type withoutEOS struct {
	Grammar
	eos int
}

func (w withoutEOS) Allowed(a []bool) {
	w.Grammar.Allowed(a)
	a[w.eos] = false
}

func TestSpecTimingFollowsTheTokenizerBuckets(t *testing.T) {
	spec := tokenizer.DefaultSpec()
	spec.Labels = []string{"web"}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	rng := sampling.TraceRNG(1, 1)
	tm := SpecTiming(&spec, export.TimingTables{}, "web")
	for k := 0; k < spec.DtBuckets; k++ {
		lo, hi := spec.DtBounds(k)
		for i := 0; i < 20; i++ {
			g := int64(tm.Gap(k, rng))
			if g < lo || (k < spec.DtBuckets-1 && g > hi) {
				t.Fatalf("bucket %d (%d, %d] ns gave %d ns", k, lo, hi, g)
			}
		}
	}
	// With the bundle's per-bucket table, gaps come from the table.
	tables := export.TimingTables{BucketNs: make([][]int64, spec.DtBuckets)}
	tables.BucketNs[10] = []int64{5000, 5001}
	if g := SpecTiming(&spec, tables, "web").Gap(10, rng); g < 5000 || g > 5001 {
		t.Errorf("bucket 10 with table [5000, 5001] ns gave %v", g)
	}
	// Without timing tokens, the label's inter-arrival table decides.
	paper := tokenizer.PaperSpec()
	paper.Labels = []string{"web"}
	if err := paper.Validate(); err != nil {
		t.Fatal(err)
	}
	tables = export.TimingTables{InterArrivalNs: map[string][]int64{"web": {2_000_000, 3_000_000}}}
	for i := 0; i < 50; i++ {
		if g := SpecTiming(&paper, tables, "web").Gap(-1, rng); g < 2*time.Millisecond || g > 3*time.Millisecond {
			t.Fatalf("paper layout gap %v outside the label's table [2ms, 3ms]", g)
		}
	}
}
