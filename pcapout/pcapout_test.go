package pcapout_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/pcapout"
	"github.com/netssm/netssm/tokenizer"
)

var (
	a4 = [4]byte{192, 168, 1, 10}
	b4 = [4]byte{10, 0, 0, 53}
)

func TestCheckRepairsOnlyWhatIsUnambiguous(t *testing.T) {
	good := capturetest.IPv4UDP(a4, b4, 1, 2, make([]byte, 20))
	if _, rep, err := pcapout.Check(append([]byte(nil), good...)); err != nil || rep != (pcapout.Repairs{}) {
		t.Fatalf("valid packet: %+v %v", rep, err)
	}
	badSum := append([]byte(nil), good...)
	badSum[10] ^= 0xff
	if _, rep, err := pcapout.Check(badSum); err != nil || !rep.Checksum || pcapout.IPv4Checksum(badSum[:20]) != 0 {
		t.Fatalf("bad checksum not fixed: %+v %v", rep, err)
	}
	short := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(short[2:], 20)
	if orig, rep, err := pcapout.Check(short); err != nil || !rep.Length || orig != len(good) {
		t.Fatalf("length below the bytes present: orig %d %+v %v", orig, rep, err)
	}
	clipped := capturetest.IPv4TCP(a4, b4, nil, make([]byte, 1400))[:40]
	if orig, rep, err := pcapout.Check(clipped); err != nil || rep.Length || orig != 1440 {
		t.Fatalf("clipped packet: original length %d (want 1440 from the IP header) %+v %v", orig, rep, err)
	}
	v6 := capturetest.IPv6UDP(false, make([]byte, 4))
	if orig, _, err := pcapout.Check(v6); err != nil || orig != len(v6) {
		t.Fatalf("IPv6: %d %v", orig, err)
	}
	for name, p := range map[string][]byte{
		"empty":      {},
		"version-5":  append([]byte{0x55}, good[1:]...),
		"ihl-4":      append([]byte{0x44}, good[1:]...),
		"ihl-past":   good[:16],
		"ipv6-short": v6[:30],
	} {
		if _, _, err := pcapout.Check(append([]byte(nil), p...)); !errors.Is(err, pcapout.ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", name, err)
		}
	}
}

func TestWrittenRecordsCarryIPLengthAndExactTimes(t *testing.T) {
	for _, link := range []pcapout.Link{pcapout.LinkRaw, pcapout.LinkEthernet} {
		path := filepath.Join(t.TempDir(), "out.pcap")
		w, err := pcapout.Create(path, pcapout.Options{Link: link})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("file visible before Commit")
		}
		ts := time.Unix(1700000000, 123456789)
		pkt := capturetest.IPv4TCP(a4, b4, nil, make([]byte, 1000))[:40]
		if _, err := w.WritePacket(ts, pkt); err != nil {
			t.Fatal(err)
		}
		if _, err := w.WritePacket(ts, []byte{0x99, 1, 2}); !errors.Is(err, pcapout.ErrInvalid) {
			t.Fatalf("invalid packet: %v", err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if st := w.Stats(); st.Written != 1 || st.Invalid != 1 {
			t.Fatalf("stats %+v", st)
		}
		got := capturetest.IPPackets(t, path)
		hdr := map[pcapout.Link]int{pcapout.LinkRaw: 0, pcapout.LinkEthernet: 14}[link]
		if len(got) != 1 || !got[0].Timestamp.Equal(ts) || got[0].WireLen != 1040+hdr || got[0].CapLen != 40+hdr || !bytes.Equal(got[0].IP, pkt) {
			t.Fatalf("%s: read back %+v", link, got)
		}
	}
}

func TestWriteTraceRoundTripsTokens(t *testing.T) {
	spec := tokenizer.DefaultSpec()
	spec.Checksums = tokenizer.ChecksumsKeep // compared byte for byte below
	spec.Labels = []string{"web"}
	spec.Validate()
	enc, _ := spec.NewEncoder("web")
	t0 := time.Unix(1700000000, 0)
	pkts := [][]byte{capturetest.IPv4UDP(a4, b4, 1, 2, make([]byte, 40)), capturetest.IPv6UDP(true, []byte("abc"))}
	for i, p := range pkts {
		enc.Add(t0.Add(time.Duration(i)*5*time.Millisecond), len(p), p)
	}
	tr := enc.Finish()
	path := filepath.Join(t.TempDir(), "t.pcap")
	rep, err := pcapout.WriteTrace(path, &spec, tr.Tokens, pcapout.TraceOptions{Start: t0})
	if err != nil || rep.Written != 2 || rep.Decoded != 2 {
		t.Fatalf("%+v %v", rep, err)
	}
	got := capturetest.IPPackets(t, path)
	for i, p := range got {
		if !bytes.Equal(p.IP, pkts[i][:spec.Keep(pkts[i]).Keep]) || p.WireLen != len(pkts[i]) {
			t.Fatalf("packet %d differs", i)
		}
	}
	lo, hi := spec.DtBounds(spec.DtBucket(5e6))
	if dt := got[1].Timestamp.Sub(got[0].Timestamp).Nanoseconds(); dt <= lo || dt > hi {
		t.Fatalf("inter-arrival %d outside its bucket (%d, %d]", dt, lo, hi)
	}
}

// TestTsharkFindsNoMalformedPackets runs tshark (when installed) over pcaps
// detokenized from the project's captures.
func TestTsharkFindsNoMalformedPackets(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed")
	}
	spec := tokenizer.DefaultSpec()
	spec.Checksums = tokenizer.ChecksumsKeep // compared byte for byte below
	spec.Labels = []string{"x"}
	spec.Validate()
	dir := t.TempDir()
	var outs []string
	for i, f := range capturetest.ProjectCaptures(t) {
		enc, _ := spec.NewEncoder("x")
		for _, p := range capturetest.IPPackets(t, f) {
			if p.IP != nil {
				enc.Add(p.Timestamp, p.IPWireLen(), p.IP)
			}
		}
		for _, link := range []pcapout.Link{pcapout.LinkRaw, pcapout.LinkEthernet} {
			out := filepath.Join(dir, string(link)+filepath.Base(f)+".pcap")
			if _, err := pcapout.WriteTrace(out, &spec, enc.Finish().Tokens, pcapout.TraceOptions{Options: pcapout.Options{Link: link}}); err != nil {
				t.Fatal(err)
			}
			outs = append(outs, out)
		}
		_ = i
	}
	for _, out := range outs {
		cmd := exec.Command(tshark, "-n", "-r", out, "-Y", "_ws.malformed || _ws.expert.severity == error", "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tshark %s: %v\n%s", out, err, b)
		}
		var bad []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "Running as user") {
				bad = append(bad, l)
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s: tshark flags %d packets, e.g. %q", filepath.Base(out), len(bad), bad[0])
		}
	}
}
