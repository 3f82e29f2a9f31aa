package pipeline_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/netssm/netssm/arrowdata"
	"github.com/netssm/netssm/arrowdata/pipeline"
	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/pcapout"
	"github.com/netssm/netssm/tokenizer"
)

// referenceRow is NetSSM's preprocessing of one Ethernet frame as its
// conformance README describes it, written independently of package
// tokenizer on gopacket's layer decoding: TCP keeps the contents of every
// layer but application and error layers; UDP keeps the link and network
// layers, its 8-byte header and the first 12 payload bytes, or all but the
// last of a shorter payload (and, netssm's choice where NetSSM fails, none
// of an empty one); other packets are left out. Rows are cut or
// zero-padded to 128 bytes.
func referenceRow(frame []byte) ([]byte, bool) {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	var row []byte
	switch tcp, udp := pkt.Layer(layers.LayerTypeTCP), pkt.Layer(layers.LayerTypeUDP); {
	case tcp != nil:
		for _, l := range pkt.Layers() {
			_, app := l.(gopacket.ApplicationLayer)
			_, bad := l.(gopacket.ErrorLayer)
			if !app && !bad {
				row = append(row, l.LayerContents()...)
			}
		}
	case udp != nil:
		for _, l := range pkt.Layers() {
			_, link := l.(gopacket.LinkLayer)
			_, net := l.(gopacket.NetworkLayer)
			if link || net {
				row = append(row, l.LayerContents()...)
			}
		}
		u := udp.(*layers.UDP)
		row = append(row, u.Contents...)
		switch p := u.Payload; {
		case len(p) >= 12:
			row = append(row, p[:12]...)
		case len(p) > 0:
			row = append(row, p[:len(p)-1]...)
		}
	default:
		return nil, false
	}
	if len(row) > 128 {
		return row[:128], true
	}
	return append(row, make([]byte, 128-len(row))...), true
}

// referenceJSONL is NetSSM's JSONL for Ethernet captures, one line per
// capture (labelled by its directory), Filename dir/NAME.
func referenceJSONL(t *testing.T, files []string, dir string) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, f := range files {
		var rows []string
		for _, frame := range ethernetFrames(t, f) {
			row, ok := referenceRow(frame)
			if !ok {
				continue
			}
			words := make([]string, len(row))
			for i, b := range row {
				words[i] = strconv.Itoa(int(b))
			}
			rows = append(rows, strings.Join(words, " "))
		}
		name := dir + "/" + filepath.Base(f)
		sum := sha256.Sum256([]byte(name))
		line, err := json.Marshal(map[string]any{"Data": "<|" + filepath.Base(filepath.Dir(f)) + "|> " + strings.Join(rows, " <|pkt|> ")})
		if err != nil {
			t.Fatal(err)
		}
		// NetSSM's field order and no HTML escaping: build the object by hand.
		data := strings.TrimSuffix(strings.TrimPrefix(string(line), `{"Data":`), "}")
		data = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(data)
		out.WriteString(`{"Data":` + data + `,"Hash":"` + hex.EncodeToString(sum[:]) + `","Filename":"` + name + `","OrigLen":` + strconv.Itoa(len(rows)) + "}\n")
	}
	return out.Bytes()
}

// ethernetFrames reads the frames of a capture (its IP records, link
// header included).
func ethernetFrames(t *testing.T, path string) [][]byte {
	t.Helper()
	r, err := capture.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var frames [][]byte
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.IP == nil {
			continue
		}
		if p.LinkTypeID != capture.LinkTypeEthernet {
			t.Fatalf("%s: link type %d, want Ethernet", path, p.LinkTypeID)
		}
		frames = append(frames, append(append([]byte(nil), p.LinkHdr...), p.IP...))
	}
}

func ether(et uint16, ip []byte, rng *rand.Rand) []byte {
	f := make([]byte, 14, 14+len(ip))
	for i := range 12 {
		f[i] = byte(rng.IntN(256))
	}
	binary.BigEndian.PutUint16(f[12:], et)
	return append(f, ip...)
}

func randomPayload(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(1 + rng.IntN(255)) // never 0, so a kept byte is told from padding
	}
	return p
}

func addr(rng *rand.Rand) [4]byte {
	return [4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))}
}

// syntheticFrames makes Ethernet frames of every kind the netssm layout
// tells apart: TCP with options and payload, headers longer than a row,
// UDP payloads of 0–30 bytes (NetSSM's short-payload rule), IPv6, an
// Ethernet trailer, and packets NetSSM leaves out (ICMP, a fragment).
func syntheticFrames(rng *rand.Rand, n int) [][]byte {
	var out [][]byte
	for range n {
		var f []byte
		switch k := rng.IntN(9); k {
		case 0: // SYN: MSS, SACK permitted, timestamps, window scale
			opts := []byte{2, 4, 5, 180, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7}
			f = ether(0x0800, capturetest.IPv4TCP(addr(rng), addr(rng), opts, nil), rng)
		case 1:
			f = ether(0x0800, capturetest.IPv4TCP(addr(rng), addr(rng), nil, randomPayload(rng, rng.IntN(200))), rng)
		case 2: // 60-byte IP header and 60-byte TCP header: longer than a row
			ip := capturetest.IPv4TCP(addr(rng), addr(rng), bytes.Repeat([]byte{1}, 40), randomPayload(rng, 10))
			ip = append(ip[:20:20], append(bytes.Repeat([]byte{1}, 40), ip[20:]...)...)
			ip[0] = 0x4f
			binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
			binary.BigEndian.PutUint16(ip[10:], 0)
			binary.BigEndian.PutUint16(ip[10:], pcapout.IPv4Checksum(ip[:60]))
			f = ether(0x0800, ip, rng)
		case 3, 4:
			sizes := []int{0, 1, 2, 5, 11, 12, 13, 30}
			f = ether(0x0800, capturetest.IPv4UDP(addr(rng), addr(rng), uint16(rng.IntN(65536)), 5004, randomPayload(rng, sizes[rng.IntN(len(sizes))])), rng)
		case 5: // a short UDP packet in a minimum-size frame with a trailer
			f = ether(0x0800, capturetest.IPv4UDP(addr(rng), addr(rng), 1000, 2000, randomPayload(rng, 3)), rng)
			for len(f) < 60 {
				f = append(f, 0xee)
			}
		case 6:
			f = ether(0x86dd, capturetest.IPv6UDP(false, randomPayload(rng, []int{0, 4, 20}[rng.IntN(3)])), rng)
		case 7: // IPv6 TCP
			ip := make([]byte, 40+20)
			ip[0], ip[6], ip[7] = 0x60, 6, 64
			binary.BigEndian.PutUint16(ip[4:], 20)
			ip[8], ip[23], ip[24], ip[39] = 0xfd, byte(rng.IntN(256)), 0xfd, 2
			binary.BigEndian.PutUint16(ip[40:], uint16(rng.IntN(65536)))
			ip[52], ip[53] = 0x50, 0x10
			f = ether(0x86dd, ip, rng)
		case 8: // left out: ICMP echo, or a UDP first fragment
			ip := capturetest.IPv4UDP(addr(rng), addr(rng), 53, 53, randomPayload(rng, 40))
			if rng.IntN(2) == 0 {
				ip[9] = 1
			} else {
				ip[6] = 0x20 // more fragments
			}
			f = ether(0x0800, ip, rng)
		}
		out = append(out, f)
	}
	return out
}

// writeSyntheticCaptures writes labelled Ethernet pcaps under dir and
// returns their paths.
func writeSyntheticCaptures(t *testing.T, dir string, seed uint64) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 23))
	var files []string
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, label := range []string{"voip", "web"} {
		if err := os.MkdirAll(filepath.Join(dir, label), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			var recs []capturetest.Record
			for k, f := range syntheticFrames(rng, 30) {
				recs = append(recs, capturetest.Record{Time: t0.Add(time.Duration(k) * time.Millisecond), Data: f})
			}
			p := filepath.Join(dir, label, "c"+strconv.Itoa(i)+".pcap")
			if err := os.WriteFile(p, capturetest.PcapBytes(1, 65535, recs), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, p)
		}
	}
	return files
}

// tokenizeNetSSM tokenizes files with the netssm layout and exports the
// dataset as JSONL (Filename under dir); it returns the dataset and JSONL.
func tokenizeNetSSM(t *testing.T, files []string, dir string) (string, []byte) {
	t.Helper()
	tmp := t.TempDir()
	ds := filepath.Join(tmp, "d.parquet")
	if _, err := pipeline.Tokenize(ds, files, pipeline.TokenizeOptions{Spec: tokenizer.NetSSMSpec("")}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "d.jsonl")
	if _, err := pipeline.ExportJSONL(ds, out, pipeline.ExportJSONLOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return ds, b
}

// The netssm layout writes what NetSSM's preprocessing makes of the
// project's generated captures and of its Ethernet test captures, checked
// against the reference encoder above.
func TestNetSSMLayoutMatchesAnIndependentEncoder(t *testing.T) {
	files := writeSyntheticCaptures(t, t.TempDir(), 1)
	_, got := tokenizeNetSSM(t, files, "input")
	sameNetSSMLines(t, got, referenceJSONL(t, files, "input"))

	var eth []string
	for _, f := range capturetest.ProjectCaptures(t) {
		switch filepath.Base(f) {
		case "http_curl.pcap", "dig_veth.pcapng", "stream_v4.pcapng", "stream_v6.pcap":
			eth = append(eth, f)
		}
	}
	if len(eth) != 4 {
		t.Fatalf("%d of the 4 Ethernet project captures found", len(eth))
	}
	_, got = tokenizeNetSSM(t, eth, "captures")
	sameNetSSMLines(t, got, referenceJSONL(t, eth, "captures"))
}

// Exporting a dataset, importing the JSONL and exporting again gives the
// same file, and the imported traces hold the same tokens.
func TestNetSSMJSONLImportExportIsIdentity(t *testing.T) {
	files := writeSyntheticCaptures(t, t.TempDir(), 2)
	ds, jsonl := tokenizeNetSSM(t, files, "")
	p := filepath.Join(t.TempDir(), "d.jsonl")
	if err := os.WriteFile(p, jsonl, 0o644); err != nil {
		t.Fatal(err)
	}
	checkImportExportIdentity(t, p, "")

	imported := filepath.Join(t.TempDir(), "i.parquet")
	if _, _, err := pipeline.ImportJSONL([]string{p}, imported, pipeline.ImportJSONLOptions{}); err != nil {
		t.Fatal(err)
	}
	a, b := traceTokens(t, ds), traceTokens(t, imported)
	if len(a) != len(b) || len(a) != 6 {
		t.Fatalf("%d traces tokenized, %d imported", len(a), len(b))
	}
	for i := range a {
		if !slicesEqual(a[i], b[i]) {
			t.Fatalf("trace %d: imported tokens differ from the tokenized ones", i)
		}
	}
}

func traceTokens(t *testing.T, path string) [][]uint16 {
	t.Helper()
	d, err := arrowdata.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var out [][]uint16
	for tr, err := range d.Traces() {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tr.Tokens)
	}
	return out
}

func slicesEqual(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Detokenizing a netssm-layout dataset writes Ethernet pcaps whose records
// are each kept packet behind its own link header: the row's kept bytes.
func TestNetSSMDetokenizeWritesEachRowBehindItsLinkHeader(t *testing.T) {
	files := writeSyntheticCaptures(t, t.TempDir(), 3)
	ds, _ := tokenizeNetSSM(t, files, "")
	out := filepath.Join(t.TempDir(), "out")
	rep, err := pipeline.Detokenize(ds, out, pipeline.DetokenizeOptions{Link: "raw"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Invalid != 0 || rep.GrammarIssues != 0 || rep.ChecksumFixed != 0 || len(rep.Files) != len(files) {
		t.Fatalf("report %+v", rep)
	}
	for _, f := range files {
		var want [][]byte
		for _, frame := range ethernetFrames(t, f) {
			if row, ok := referenceRow(frame); ok {
				want = append(want, row)
			}
		}
		got := ethernetFrames(t, filepath.Join(out, filepath.Base(filepath.Dir(f)), filepath.Base(f)))
		if len(got) != len(want) {
			t.Fatalf("%s: %d records written, %d rows", f, len(got), len(want))
		}
		for k := range got {
			if len(got[k]) > 128 || !bytes.Equal(got[k], want[k][:len(got[k])]) || strings.Trim(string(want[k][len(got[k]):]), "\x00") != "" {
				t.Fatalf("%s record %d: %x is not row %x without its padding", f, k, got[k], want[k])
			}
		}
	}
}
