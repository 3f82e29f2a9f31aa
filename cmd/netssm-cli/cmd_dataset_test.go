package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/tokenizer"
)

// ethernetProjectCaptures copies the project's Ethernet captures into a
// fresh directory (LABEL/FILE) and returns it.
func ethernetProjectCaptures(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"web/http_curl.pcap", "dns/dig_veth.pcapng", "udp_stream/stream_v4.pcapng", "udp_stream/stream_v6.pcap"} {
		b, err := os.ReadFile(filepath.Join(projectCaptures(t), f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// NetSSM's JSONL goes in and out of a dataset through the CLI unchanged,
// and the imported dataset trains, exports and samples Ethernet pcaps.
func TestNetSSMJSONLImportTrainsAndSamples(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d.parquet")
	if msg, code := runCLI(t, nil, "-q", "tokenize", "--layout", "netssm", "-o", data, ethernetProjectCaptures(t)); code != 0 {
		t.Fatalf("tokenize: exit %d:\n%s", code, msg)
	}
	jsonl := filepath.Join(dir, "d.jsonl")
	if msg, code := runCLI(t, nil, "-q", "dataset", "export-jsonl", data, "--dir", "input", "-o", jsonl); code != 0 || !strings.Contains(msg, "4 traces") {
		t.Fatalf("export-jsonl: exit %d:\n%s", code, msg)
	}
	imported := filepath.Join(dir, "i.parquet")
	if msg, code := runCLI(t, nil, "-q", "dataset", "import-jsonl", jsonl, "-o", imported); code != 0 || !strings.Contains(msg, "link ethernet") {
		t.Fatalf("import-jsonl: exit %d:\n%s", code, msg)
	}
	back := filepath.Join(dir, "back.jsonl")
	if msg, code := runCLI(t, nil, "-q", "dataset", "export-jsonl", imported, "-o", back); code != 0 {
		t.Fatalf("export-jsonl of the import: exit %d:\n%s", code, msg)
	}
	a, _ := os.ReadFile(jsonl)
	b, _ := os.ReadFile(back)
	if !bytes.Equal(a, b) || len(a) == 0 {
		t.Fatalf("import then export changed the file (%d bytes, %d back)", len(a), len(b))
	}

	run := filepath.Join(dir, "run")
	if msg, code := runCLI(t, nil, "-q", "train", "--data", imported, "--val-frac", "0", "--preset", "tiny", "--ctx", "160", "--batch", "2",
		"--eval-every", "0", "--seed", "7", "--steps", "3", "--out", run); code != 0 {
		t.Fatalf("train: exit %d:\n%s", code, msg)
	}
	bundle := filepath.Join(dir, "bundle")
	if msg, code := runCLI(t, nil, "-q", "export", run, "-o", bundle); code != 0 {
		t.Fatalf("export: exit %d:\n%s", code, msg)
	}
	pcap := filepath.Join(dir, "synthetic.pcap")
	if msg, code := runCLI(t, nil, "-q", "sample", "--model", bundle, "--label", "udp_stream", "--packets", "4", "--ignore-eos", "--seed", "1", "-o", pcap); code != 0 {
		t.Fatalf("sample: exit %d:\n%s", code, msg)
	}
	pkts := capturetest.IPPackets(t, pcap)
	if len(pkts) != 4 {
		t.Fatalf("sample wrote %d IP packets, want 4", len(pkts))
	}
	for i, p := range pkts {
		if p.LinkTypeID != capture.LinkTypeEthernet || p.LinkHdrLen != 14 {
			t.Errorf("packet %d: link type %d with a %d-byte header, want Ethernet's own 14", i, p.LinkTypeID, p.LinkHdrLen)
		}
		if proto := ipProto(p.IP); proto != tokenizer.ProtoTCP && proto != tokenizer.ProtoUDP {
			t.Errorf("packet %d: protocol %d, want TCP or UDP", i, proto)
		}
	}
}

func ipProto(ip []byte) int {
	switch ip[0] >> 4 {
	case 4:
		return int(ip[9])
	case 6:
		return int(ip[6])
	}
	return -1
}

// Imports of NetSSM's own example file train too (when ../shared has it).
func TestNetSSMExampleJSONLImportsAndTrains(t *testing.T) {
	ex := filepath.Join(capturetest.RepoRoot(t), "..", "shared", "conformance", "netssm-example", "expected.jsonl")
	if _, err := os.Stat(ex); err != nil {
		t.Skip("../shared/conformance/netssm-example is absent")
	}
	dir := t.TempDir()
	imported := filepath.Join(dir, "i.parquet")
	if msg, code := runCLI(t, nil, "-q", "dataset", "import-jsonl", ex, "-o", imported); code != 0 || !strings.Contains(msg, "4 traces, labels [amazon netflix twitch youtube], link ethernet") {
		t.Fatalf("import-jsonl: exit %d:\n%s", code, msg)
	}
	if msg, code := runCLI(t, nil, "-q", "train", "--data", imported, "--val-frac", "0", "--preset", "tiny", "--ctx", "160", "--batch", "2",
		"--eval-every", "0", "--seed", "7", "--steps", "2", "--out", filepath.Join(dir, "run")); code != 0 {
		t.Fatalf("train: exit %d:\n%s", code, msg)
	}
}

func TestDatasetJSONLUsageAndBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"dataset", "export-jsonl", "-o", filepath.Join(dir, "x.jsonl")},
		{"dataset", "export-jsonl", "a.parquet", "b.parquet", "-o", filepath.Join(dir, "x.jsonl")},
		{"dataset", "export-jsonl", "a.parquet"},
		{"dataset", "import-jsonl", "-o", filepath.Join(dir, "x.parquet")},
		{"dataset", "import-jsonl", "a.jsonl"},
		{"dataset", "import-jsonl", "--link", "ppp", "a.jsonl", "-o", filepath.Join(dir, "x.parquet")},
	} {
		out, code := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(out, "usage") {
			t.Errorf("%v: exit %d, want 2 with a usage line:\n%s", args, code, out)
		}
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"Data":"<|a|> 1 2","Hash":"x","Filename":"f","OrigLen":1}`+"\n"), 0o644)
	out, code := runCLI(t, nil, "dataset", "import-jsonl", bad, "-o", filepath.Join(dir, "x.parquet"))
	if code != 1 || !strings.Contains(out, bad+" line 1") {
		t.Errorf("bad line: exit %d, want 1 naming the file and line:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.parquet")); err == nil {
		t.Error("a dataset was written from a bad file")
	}
}
