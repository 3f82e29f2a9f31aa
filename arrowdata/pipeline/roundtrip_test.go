package pipeline_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netssm/netssm/arrowdata"
	"github.com/netssm/netssm/arrowdata/pipeline"
	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/capture/cryptopan"
	"github.com/netssm/netssm/capture/labels"
	"github.com/netssm/netssm/tokenizer"
)

// ipLength is the IP length field as bytes from the IP header on.
func ipLength(ip []byte) int {
	if ip[0]>>4 == 4 {
		return int(binary.BigEndian.Uint16(ip[2:4]))
	}
	return 40 + int(binary.BigEndian.Uint16(ip[4:6]))
}

type roundTrip struct {
	files, packets, checksumFixed, lengthRepaired int
}

// checkRoundTrip tokenizes files, detokenizes the dataset and compares every
// packet with the original: same number of IP packets, identical kept bytes
// (IPv4 checksum and IP length fields excepted where the detokenizer repaired
// them, which is counted), wire lengths, and timestamps (exact without
// timing, inside their bucket with it).
func checkRoundTrip(t *testing.T, files []string, timing bool) roundTrip {
	t.Helper()
	dir := t.TempDir()
	spec := tokenizer.DefaultSpec()
	spec.Timing = timing
	ds := filepath.Join(dir, "d.parquet")
	if _, err := pipeline.Tokenize(ds, files, pipeline.TokenizeOptions{Spec: spec}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if _, err := pipeline.Detokenize(ds, out, pipeline.DetokenizeOptions{}); err != nil {
		t.Fatal(err)
	}
	d, err := arrowdata.Open(ds)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sp := d.Spec()
	byBase := map[string]string{}
	for _, f := range files {
		byBase[filepath.Base(f)] = f
	}
	var rt roundTrip
	for tr, err := range d.Traces() {
		if err != nil {
			t.Fatal(err)
		}
		orig := capturetest.IPPackets(t, byBase[tr.Source])
		got := capturetest.IPPackets(t, filepath.Join(out, pipeline.PcapName(tr)))
		if len(got) != len(orig) || tr.NPackets() != len(orig) {
			t.Fatalf("%s: %d IP packets in, %d in the dataset, %d out", tr.Source, len(orig), tr.NPackets(), len(got))
		}
		rt.files++
		clock := orig[0].Timestamp
		for i, o := range orig {
			g := got[i]
			want := sp.KeptBytes(o.IP) // the L4 checksum zeroed
			keep := len(want)
			if len(g.IP) != keep {
				t.Fatalf("%s packet %d: %d bytes out, %d kept", tr.Source, o.Index, len(g.IP), keep)
			}
			if want[0]>>4 == 4 && len(want) >= 20 && !bytes.Equal(want[10:12], g.IP[10:12]) {
				rt.checksumFixed++
				copy(want[10:12], g.IP[10:12])
			}
			lf := 2
			if want[0]>>4 == 6 {
				lf = 4
			}
			repaired := ipLength(want) < keep
			if repaired {
				rt.lengthRepaired++
				copy(want[lf:lf+2], g.IP[lf:lf+2])
			}
			if !bytes.Equal(want, g.IP) {
				t.Fatalf("%s packet %d: kept bytes differ\n in  %x\n out %x", tr.Source, o.Index, want, g.IP)
			}
			if int(tr.WireLen[i]) != o.IPWireLen() {
				t.Fatalf("%s packet %d: dataset wire_len %d, capture %d", tr.Source, o.Index, tr.WireLen[i], o.IPWireLen())
			}
			if wantWire := max(ipLength(o.IP), keep); g.WireLen != wantWire {
				t.Fatalf("%s packet %d: wire length out %d, want %d (IP length field)", tr.Source, o.Index, g.WireLen, wantWire)
			}
			if !timing {
				if !g.Timestamp.Equal(o.Timestamp) {
					t.Fatalf("%s packet %d: time %v, want %v", tr.Source, o.Index, g.Timestamp, o.Timestamp)
				}
			} else if i > 0 {
				// the <dt:k> clock runs on the running maximum of capture time
				dtIn := max(o.Timestamp.Sub(clock).Nanoseconds(), 0)
				dtOut := g.Timestamp.Sub(got[i-1].Timestamp).Nanoseconds()
				k := sp.DtBucket(dtIn)
				if lo, hi := sp.DtBounds(k); dtOut > hi || (dtOut <= lo && k > 0) {
					t.Fatalf("%s packet %d: inter-arrival %d ns out of bucket %d (%d, %d]", tr.Source, o.Index, dtOut, k, lo, hi)
				}
			}
			if o.Timestamp.After(clock) {
				clock = o.Timestamp
			}
			rt.packets++
		}
	}
	if rt.files != len(files) {
		t.Fatalf("%d traces for %d files", rt.files, len(files))
	}
	return rt
}

func TestRoundTripProjectCaptures(t *testing.T) {
	for _, timing := range []bool{false, true} {
		rt := checkRoundTrip(t, capturetest.ProjectCaptures(t), timing)
		t.Logf("timing %v: %d files, %d packets round-tripped; %d IPv4 checksums recomputed, %d IP lengths repaired", timing, rt.files, rt.packets, rt.checksumFixed, rt.lengthRepaired)
	}
}

func TestRoundTripSharedCaptures(t *testing.T) {
	files := capturetest.SharedCaptures(t)
	if testing.Short() {
		t.Skip("-short")
	}
	for _, timing := range []bool{false, true} {
		rt := checkRoundTrip(t, files, timing)
		t.Logf("timing %v: %d files, %d packets round-tripped; %d IPv4 checksums recomputed, %d IP lengths repaired", timing, rt.files, rt.packets, rt.checksumFixed, rt.lengthRepaired)
	}
}

func TestBadFileIsReportedAndRunGoesOn(t *testing.T) {
	dir := t.TempDir()
	good := capturetest.ProjectCaptures(t)[0]
	lbl := filepath.Join(dir, "web")
	os.MkdirAll(lbl, 0o755)
	bad := filepath.Join(lbl, "bad.pcap")
	os.WriteFile(bad, []byte("this is not a capture"), 0o644)
	empty := filepath.Join(lbl, "empty.pcap")
	os.WriteFile(empty, nil, 0o644)
	files := []string{bad, good, empty}
	out := filepath.Join(dir, "d.parquet")
	rep, err := pipeline.Tokenize(out, files, pipeline.TokenizeOptions{Spec: tokenizer.DefaultSpec()})
	if !errors.Is(err, pipeline.ErrBadInputs) || rep.Failed != 2 || rep.Traces != 1 {
		t.Fatalf("err %v, %d failed, %d traces", err, rep.Failed, rep.Traces)
	}
	if !strings.Contains(err.Error(), "bad.pcap") || !strings.Contains(err.Error(), "empty.pcap") {
		t.Fatalf("error does not name the bad files: %v", err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal("dataset from the good file missing")
	}
	strictOut := filepath.Join(dir, "s.parquet")
	rep, err = pipeline.Tokenize(strictOut, files, pipeline.TokenizeOptions{Spec: tokenizer.DefaultSpec(), Strict: true})
	if err == nil || len(rep.Files) != 1 {
		t.Fatalf("--strict went on: %v, %d files", err, len(rep.Files))
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "*s.parquet*")); len(ents) != 0 {
		t.Fatalf("--strict left %v", ents)
	}
}

func TestLabelsCSVAndMaxPacketsSplit(t *testing.T) {
	dir := t.TempDir()
	files := capturetest.ProjectCaptures(t)
	csv := "file,label\n"
	for _, f := range files {
		csv += filepath.Base(f) + ",lab_" + filepath.Base(filepath.Dir(f)) + "\n"
	}
	os.WriteFile(filepath.Join(dir, "labels.csv"), []byte(csv), 0o644)
	lab, err := labels.ReadCSV(filepath.Join(dir, "labels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "d.parquet")
	rep, err := pipeline.Tokenize(out, files, pipeline.TokenizeOptions{Spec: tokenizer.DefaultSpec(), Labels: lab, MaxPackets: 50})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := arrowdata.Open(out)
	defer d.Close()
	for _, l := range d.Labels() {
		if !strings.HasPrefix(l, "lab_") {
			t.Fatalf("label %q not from the CSV", l)
		}
	}
	ids := map[string]bool{}
	pk := 0
	for tr, err := range d.Traces() {
		if err != nil {
			t.Fatal(err)
		}
		if tr.NPackets() > 50 || ids[tr.TraceID] {
			t.Fatalf("trace %s: %d packets (max 50) or duplicate id", tr.TraceID, tr.NPackets())
		}
		ids[tr.TraceID] = true
		pk += tr.NPackets()
	}
	if pk != rep.Packets || len(ids) <= len(files) {
		t.Fatalf("%d packets in %d traces", pk, len(ids))
	}
	if _, err := lab("/elsewhere/unknown.pcap"); err == nil {
		t.Fatal("unlisted file got a label")
	}
}

func TestAnonymizeRewritesAddressesPrefixPreservingly(t *testing.T) {
	files := capturetest.ProjectCaptures(t)[:1]
	dir := t.TempDir()
	an, _ := cryptopan.FromPassphrase("test key")
	out := filepath.Join(dir, "d.parquet")
	if _, err := pipeline.Tokenize(out, files, pipeline.TokenizeOptions{Spec: tokenizer.DefaultSpec(), Anonymize: an}); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.Detokenize(out, filepath.Join(dir, "o"), pipeline.DetokenizeOptions{}); err != nil {
		t.Fatal(err)
	}
	pcaps, _ := filepath.Glob(filepath.Join(dir, "o", "*", "*.pcap"))
	orig, got := capturetest.IPPackets(t, files[0]), capturetest.IPPackets(t, pcaps[0])
	ref, _ := cryptopan.FromPassphrase("test key")
	for i := range orig {
		o, g := append([]byte(nil), orig[i].IP...), got[i].IP
		ref.Packet(o)
		src := map[byte][2]int{4: {12, 20}, 6: {8, 40}}[o[0]>>4]
		if bytes.Equal(orig[i].IP[src[0]:src[1]], g[src[0]:src[1]]) || !bytes.Equal(o[src[0]:src[1]], g[src[0]:src[1]]) {
			t.Fatalf("packet %d: addresses not Crypto-PAn rewritten", i)
		}
	}
}

func TestDatasetInfoCountsMatchTokenize(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "d.parquet")
	rep, err := pipeline.Tokenize(out, capturetest.ProjectCaptures(t), pipeline.TokenizeOptions{Spec: tokenizer.DefaultSpec()})
	if err != nil {
		t.Fatal(err)
	}
	info, err := pipeline.Info(out)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, c := range info.TokenCount {
		sum += c
	}
	protos := 0
	for _, n := range info.Protocols {
		protos += n
	}
	if info.Traces != rep.Traces || info.Packets != rep.Packets || info.Tokens != rep.Tokens || int(sum) != rep.Tokens || protos != rep.Packets || len(info.PerLabel) != 3 {
		t.Fatalf("info %+v vs tokenize %+v", info, rep)
	}
	var b strings.Builder
	if err := info.Write(&b, 5); err != nil || !strings.Contains(b.String(), "udp_stream") {
		t.Fatalf("info text: %v\n%s", err, b.String())
	}
}
