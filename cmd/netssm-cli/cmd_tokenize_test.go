package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func projectCaptures(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "captures"))
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTokenizeDetokenizeInfoCommands(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d.parquet")
	out, code := runCLI(t, nil, "-q", "tokenize", "--layout", "v1", "-o", data, "--timing", "off", "--payload", "tcp=4,udp=8", projectCaptures(t))
	if code != 0 || !strings.Contains(out, "wrote "+data) || !strings.Contains(out, "6 traces") {
		t.Fatalf("tokenize exit %d:\n%s", code, out)
	}
	out, code = runCLI(t, nil, "dataset", "info", data)
	for _, want := range []string{"layout v1, timing false", "tcp=4 udp=8", "web", "dns", "udp_stream", "protocol mix", "IPv6/UDP", "token histogram"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("dataset info exit %d lacks %q:\n%s", code, want, out)
		}
	}
	pcaps := filepath.Join(dir, "pcaps")
	out, code = runCLI(t, nil, "detokenize", "--link", "ethernet", "-o", pcaps, data)
	if code != 0 || !strings.Contains(out, "wrote 6 pcaps") || !strings.Contains(out, "0 invalid") {
		t.Fatalf("detokenize exit %d:\n%s", code, out)
	}
	if files, _ := filepath.Glob(filepath.Join(pcaps, "*", "*.pcap")); len(files) != 6 {
		t.Fatalf("%d pcaps written", len(files))
	}
}

// --addr-table 0 writes the flow layout of spec version 2 (no address
// references), which takes more tokens than version 3's default table.
func TestTokenizeAddrTableZeroIsSpecVersion2(t *testing.T) {
	dir := t.TempDir()
	tokens := map[string]int{}
	for _, n := range []string{"0", "64"} {
		data := filepath.Join(dir, n+".parquet")
		if out, code := runCLI(t, nil, "-q", "tokenize", "--addr-table", n, "-o", data, projectCaptures(t)); code != 0 {
			t.Fatalf("tokenize --addr-table %s exit %d:\n%s", n, code, out)
		}
		out, code := runCLI(t, nil, "dataset", "info", data)
		want := map[string]string{"0": "spec v2, layout flow", "64": "spec v3, layout flow"}[n]
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("dataset info of --addr-table %s lacks %q:\n%s", n, want, out)
		}
		_, rest, _ := strings.Cut(out, "packets, ")
		count, _, _ := strings.Cut(rest, " tokens")
		tokens[n], _ = strconv.Atoi(count)
	}
	if tokens["64"] == 0 || tokens["0"] <= tokens["64"] {
		t.Fatalf("tokens without the address table %d, with it %d: want more without", tokens["0"], tokens["64"])
	}
}

func TestTokenizeUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d.parquet")
	caps := projectCaptures(t)
	for _, args := range [][]string{
		{"tokenize", "-o", data},
		{"tokenize", caps},
		{"tokenize", "-o", data, "--layout", "wide", caps},
		{"tokenize", "-o", data, "--timing", "maybe", caps},
		{"tokenize", "-o", data, "--payload", "tcp=-1", caps},
		{"tokenize", "-o", data, "--payload", "sctp=4", caps},
		{"tokenize", "-o", data, "--label", "a", "--labels", "x.csv", caps},
		{"tokenize", "-o", data, "--layout", "netssm", "--payload", "tcp=0,udp=12", caps},
		{"tokenize", "-o", data, "--layout", "netssm", "--timing", "on", caps},
		{"tokenize", "-o", data, "--layout", "netssm", "--checksums", "keep", caps},
		{"tokenize", "-o", data, "--layout", "v1", "--addr-table", "8", caps},
		{"tokenize", "-o", data, "--addr-table", "-1", caps},
		{"detokenize", "-o", dir},
		{"detokenize", "-o", dir, "--link", "ppp", data},
		{"dataset", "info"},
	} {
		out, code := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(out, "usage") {
			t.Errorf("%v: exit %d, want 2 with a usage line:\n%s", args, code, out)
		}
	}
}

func TestTokenizeBadInputExitsOneAfterTheRest(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "web", "broken.pcap")
	os.MkdirAll(filepath.Dir(bad), 0o755)
	os.WriteFile(bad, []byte("not a capture"), 0o644)
	good := filepath.Join(projectCaptures(t), "dns", "dig_veth.pcapng")
	data := filepath.Join(dir, "d.parquet")
	out, code := runCLI(t, nil, "-q", "tokenize", "-o", data, bad, good)
	if code != 1 || !strings.Contains(out, "broken.pcap") || !strings.Contains(out, "1 traces") {
		t.Fatalf("exit %d, want 1 naming the bad file after writing the good one:\n%s", code, out)
	}
	if _, err := os.Stat(data); err != nil {
		t.Fatal("dataset of the good file missing")
	}
	strict := filepath.Join(dir, "s.parquet")
	out, code = runCLI(t, nil, "-q", "tokenize", "--strict", "-o", strict, bad, good)
	if code != 1 || !strings.Contains(out, "broken.pcap") {
		t.Fatalf("--strict exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(strict); err == nil {
		t.Fatal("--strict left a dataset")
	}
	out, code = runCLI(t, nil, "dataset", "info", bad)
	if code != 1 || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("info on a non-dataset: exit %d, want 1 with one line:\n%s", code, out)
	}
}

// TestTokenizeReportsABadCaptureOnceAndCleanFilesNotAtAll: a 10-byte pcap
// is named once, as too short to be a capture; the good captures, with
// nothing skipped, get no line of their own.
func TestTokenizeReportsABadCaptureOnceAndCleanFilesNotAtAll(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join(projectCaptures(t), "web", "http_curl.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.pcap")
	if err := os.WriteFile(short, good[:10], 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := runCLI(t, nil, "--quiet", "tokenize", "-o", filepath.Join(dir, "d.parquet"), projectCaptures(t), short)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	if n := strings.Count(out, "short.pcap"); n != 1 || !strings.Contains(out, "too short to be a capture") {
		t.Errorf("the 10-byte file is named %d times (want once, as too short to be a capture):\n%s", n, out)
	}
	if strings.Contains(out, "http_curl") {
		t.Errorf("a clean capture got a line of its own:\n%s", out)
	}
}
