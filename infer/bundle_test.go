package infer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
	timing, _ := json.Marshal(TimingTables{InterArrivalNs: map[string][]int64{"web": {1000, 50_000, 2_000_000}}})
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

// On a random-weight model, structure-aware decoding makes every packet a
// well-formed IP packet whose L4 header is complete; without it almost none
// are. (Which protocols appear is the model's business: the grammar admits
// every IP protocol, so only a trained model concentrates on TCP/UDP.)
func TestBundleConstrainedPacketsAreWellFormed(t *testing.T) {
	orttest.Init(t)
	dir := t.TempDir()
	b, err := OpenBundle(writeTinyBundle(t, dir), ortOptions())
	if err != nil {
		t.Fatal(err)
	}
	share := func(constrain bool) (wf, l4 float64, n int) {
		out := filepath.Join(dir, map[bool]string{true: "on", false: "off"}[constrain])
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		prompt, err := b.Prompt("web", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		job := Job{Traces: 8, Batch: 4, Seed: 5, Prompt: prompt, Limits: Limits{Packets: 30, Tokens: 3000},
			Sampling: sampling.Default(), Vocab: b.Vocab, Timing: b.Timing("web"), Start: epoch}
		if constrain {
			job.NewGrammar = b.NewGrammar
		}
		if _, err := Generate(context.Background(), b.Model, &PcapSink{Path: out, Dir: true, NewWriter: b.NewPacketWriter}, job); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(out, "*.pcap"))
		var good, tu int
		for _, f := range files {
			for _, s := range readShapes(t, f) {
				n++
				if s.wellFormed {
					good++
				}
				if s.tcpUDP {
					tu++
				}
			}
			tsharkMalformed(t, f, constrain)
		}
		if n == 0 {
			return 0, 0, 0
		}
		return float64(good) / float64(n), float64(tu) / float64(n), n
	}
	wf, l4, n := share(true)
	uwf, ul4, un := share(false)
	t.Logf("constrained: %d packets, %.1f%% well-formed IP, %.1f%% IP+TCP/UDP; unconstrained: %d packets, %.1f%% well-formed, %.1f%% IP+TCP/UDP",
		n, 100*wf, 100*l4, un, 100*uwf, 100*ul4)
	if n == 0 || wf != 1 {
		t.Errorf("constrained decoding: %.3f of %d packets well-formed, want all", wf, n)
	}
	if un > 0 && uwf >= wf {
		t.Errorf("unconstrained decoding of a random model is as well-formed (%.3f) as constrained", uwf)
	}
}

// tsharkMalformed fails the test when tshark (if installed) reports a
// malformed packet in a constrained file.
func tsharkMalformed(t *testing.T, path string, mustBeClean bool) {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil || !mustBeClean {
		return
	}
	out, err := exec.Command("tshark", "-n", "-r", path, "-Y", "_ws.malformed || _ws.expert.severity >= error").Output()
	if err != nil {
		t.Fatalf("tshark on %s: %v\n%s", path, err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("tshark finds malformed packets in %s:\n%s", path, s)
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
	job := Job{Traces: 1, Batch: 1, Seed: 9, Prompt: []int{b.Vocab.Labels[0]}, Limits: Limits{Packets: 3},
		Sampling: sampling.Default(), Vocab: b.Vocab, NewGrammar: b.NewGrammar, Timing: b.Timing("web"), Start: epoch}
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
