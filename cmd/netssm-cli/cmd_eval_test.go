package main

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// writeUDPCapture writes a LINKTYPE_RAW pcap of n UDP packets whose sizes
// and gaps depend on the workload, so that two labels differ.
func writeUDPCapture(t *testing.T, path string, n int, size int, gap time.Duration, seed uint64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	ts := time.Unix(1_700_000_000, 0)
	a, b := net.IPv4(10, 0, 0, 1).To4(), net.IPv4(192, 0, 2, 9).To4()
	for i := range n {
		src, dst, sp, dp := a, b, layers.UDPPort(50000), layers.UDPPort(3478)
		if i%2 == 1 {
			src, dst, sp, dp = b, a, dp, sp
		}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src, DstIP: dst}
		u := &layers.UDP{SrcPort: sp, DstPort: dp}
		_ = u.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		payload := make([]byte, size/2+rng.IntN(size))
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, u, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		ts = ts.Add(time.Duration(rng.ExpFloat64()*float64(gap)) + time.Microsecond)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

func evalInputs(t *testing.T) (real, synth string) {
	dir := t.TempDir()
	real, synth = filepath.Join(dir, "real"), filepath.Join(dir, "synth")
	for i, root := range []string{real, synth} {
		for j := range 2 {
			seed := uint64(i*10 + j)
			writeUDPCapture(t, filepath.Join(root, "voice", "v"+string(rune('a'+j))+".pcap"), 400, 120, 20*time.Millisecond, seed)
			writeUDPCapture(t, filepath.Join(root, "video", "v"+string(rune('a'+j))+".pcap"), 400, 1000, 2*time.Millisecond, seed+100)
		}
	}
	return real, synth
}

func TestEvalWritesReportAndPlotRedrawsFromIt(t *testing.T) {
	real, synth := evalInputs(t)
	out := filepath.Join(t.TempDir(), "report")
	stdout, code := runCLI(t, nil, "eval", "--real", real, "--synth", synth, "--train", real, "--window", "50", "--flow-window", "100", "--out", out)
	if code != 0 {
		t.Fatalf("eval exit %d:\n%s", code, stdout)
	}
	for _, want := range []string{"report:", "fidelity (pooled)", "compliance synthetic: pass", "flow structure (first 100 packets of each trace",
		"label confusion: 2 of 2", "utility: TRTR", "privacy:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("eval output lacks %q:\n%s", want, stdout)
		}
	}
	for _, f := range []string{"report.md", "metrics.json", "plots/figures.json", "plots/wire_len_cdf.png", "plots/wire_len_cdf.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	list, code := runCLI(t, nil, "plot", "list", out)
	if code != 0 || !strings.Contains(list, "inter_arrival_cdf") {
		t.Fatalf("plot list exit %d:\n%s", code, list)
	}
	stem := filepath.Join(t.TempDir(), "iat")
	if msg, code := runCLI(t, nil, "plot", "figure", "--out", stem, "--format", "svg", "--width", "7", out, "inter_arrival_cdf"); code != 0 {
		t.Fatalf("plot figure exit %d:\n%s", code, msg)
	}
	if _, err := os.Stat(stem + ".svg"); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(stem + ".png"); err == nil {
		t.Error("--format svg also wrote a PNG")
	}
	if msg, code := runCLI(t, nil, "plot", "divergence", "--out", stem+"_div", "--label", "voice", out); code != 0 {
		t.Fatalf("plot divergence exit %d:\n%s", code, msg)
	}
}

func TestEvalAndPlotUsageErrorsExitTwo(t *testing.T) {
	real, _ := evalInputs(t)
	out := t.TempDir()
	for _, args := range [][]string{
		{"eval", "--real", real, "--out", out},                               // no --synth
		{"eval", "--real", real, "--synth", real, "--out", out, "stray-arg"}, // positional argument
		{"eval", "--real", real, "--synth", real, "--out", out, "--window", "2"},
		{"eval", "--real", real, "--synth", real, "--out", out, "--flow-window", "0"},
		{"plot", "figure", out},                         // missing NAME
		{"plot", "figure", "--format", "gif", out, "x"}, // bad format
		{"plot", "divergence", "--measure", "kl", out},  // bad measure
	} {
		msg, code := runCLI(t, nil, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, msg)
		}
	}
}

func TestEvalOnMissingCaptureExitsOneNamingIt(t *testing.T) {
	_, synth := evalInputs(t)
	msg, code := runCLI(t, nil, "eval", "--real", "/nonexistent/captures", "--synth", synth, "--out", t.TempDir())
	if code != 1 || !strings.Contains(msg, "/nonexistent/captures") || strings.Count(strings.TrimSpace(msg), "\n") > 0 {
		t.Errorf("exit %d, want 1 with one line naming the path:\n%s", code, msg)
	}
}

func TestEvalStrictFailsOnNonCompliantSynthetic(t *testing.T) {
	real, _ := evalInputs(t)
	bad := filepath.Join(t.TempDir(), "bad.pcap")
	f, err := os.Create(bad)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	w.WriteFileHeader(65535, layers.LinkTypeRaw)
	rng := rand.New(rand.NewPCG(3, 3))
	for range 100 { // random bytes, all at one instant
		b := make([]byte, 60)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		b[0] = 0x45
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: 60, Length: 60}, b)
	}
	f.Close()
	msg, code := runCLI(t, nil, "eval", "--strict", "--no-utility", "--no-tshark", "--real", real, "--synth", bad, "--out", t.TempDir())
	if code != 1 || !strings.Contains(msg, "FAIL protocol compliance") {
		t.Errorf("exit %d, want 1 and a compliance warning:\n%s", code, msg)
	}
}
