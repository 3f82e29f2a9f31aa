package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netssm/netssm/export"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort/orttest"
	"github.com/netssm/netssm/tokenizer"
)

func TestSampleUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	base := []string{"netssm-cli", "-q", "sample", "--model", filepath.Join(dir, "nobundle"), "--label", "x"}
	cases := map[string][]string{
		"no output":               {},
		"traces into one file":    {"--traces", "3", "-o", filepath.Join(dir, "a.pcap")},
		"shard into one file":     {"--shard", "0/2", "-o", filepath.Join(dir, "a.pcap")},
		"bad shard":               {"--shard", "2/2", "-o", dir},
		"bad top-p":               {"--top-p", "1.5", "-o", filepath.Join(dir, "a.pcap")},
		"bad temperature":         {"--temperature", "-1", "-o", filepath.Join(dir, "a.pcap")},
		"unknown preset":          {"--preset", "fast", "-o", filepath.Join(dir, "a.pcap")},
		"zero batch":              {"--batch", "0", "-o", filepath.Join(dir, "a.pcap")},
		"negative packets":        {"--packets", "-5", "-o", filepath.Join(dir, "a.pcap")},
		"prompt packets alone":    {"--prompt-packets", "4", "-o", filepath.Join(dir, "a.pcap")},
		"not a pcap name":         {"-o", filepath.Join(dir, "a.txt")},
		"bad execution provider":  {"--ep", "tpu", "-o", filepath.Join(dir, "a.pcap")},
		"bad io binding":          {"--io-binding", "maybe", "-o", filepath.Join(dir, "a.pcap")},
		"stray argument":          {"-o", filepath.Join(dir, "a.pcap"), "extra"},
		"empty shard":             {"--traces", "1", "--shard", "1/2", "-o", dir},
		"empty fresh-hosts key":   {"--fresh-hosts", "", "-o", filepath.Join(dir, "a.pcap")},
		"hex key one digit short": {"--fresh-hosts", strings.Repeat("ab", 31) + "c", "-o", filepath.Join(dir, "a.pcap")},
	}
	for name, extra := range cases {
		t.Run(name, func(t *testing.T) {
			if code := run(append(append([]string{}, base...), extra...)); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
		})
	}
}

// sampleBundle exports a tiny random-weight Mamba-2 with the default
// tokenizer spec (labels web, dns) and returns its directory.
func sampleBundle(t *testing.T) string {
	t.Helper()
	return sampleBundleOf(t, tokenizer.DefaultSpec())
}

// sampleBundleOf is sampleBundle with another tokenizer spec.
func sampleBundleOf(t *testing.T, spec tokenizer.Spec) string {
	t.Helper()
	orttest.Init(t)
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
	dir := filepath.Join(t.TempDir(), "bundle")
	if _, err := export.Write(dir, export.Info{Config: c, Tokenizer: raw, Labels: spec.Labels}, model.InitParams(c, 3), export.Options{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sampleDir runs `sample` into a fresh directory and returns its files.
func sampleDir(t *testing.T, bundle string, extra ...string) map[string][]byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	args := append([]string{"netssm-cli", "-q", "sample", "--model", bundle, "--label", "web", "--traces", "5", "--packets", "6", "--seed", "42", "--ignore-eos", "-o", out + "/"}, extra...)
	if code := run(args); code != 0 {
		t.Fatalf("%v: exit code %d", extra, code)
	}
	files := map[string][]byte{}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

func sameSampleFiles(t *testing.T, what string, a, b map[string][]byte) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d files vs %d", what, len(a), len(b))
	}
	for name, x := range a {
		if !bytes.Equal(x, b[name]) {
			t.Errorf("%s: %s differs", what, name)
		}
	}
}

func TestSampleIsReproducibleAcrossRunsBatchesAndShards(t *testing.T) {
	bundle := sampleBundle(t)
	ref := sampleDir(t, bundle, "--batch", "1")
	if len(ref) != 5 {
		t.Fatalf("5 traces wrote %d files", len(ref))
	}
	size := 0
	for _, b := range ref {
		size += len(b)
	}
	if size <= 5*24 {
		t.Fatal("no trace holds a packet: the comparisons below would be vacuous")
	}
	sameSampleFiles(t, "same seed twice", ref, sampleDir(t, bundle, "--batch", "1"))
	sameSampleFiles(t, "batch 1 vs batch 4", ref, sampleDir(t, bundle, "--batch", "4"))
	union := sampleDir(t, bundle, "--batch", "2", "--shard", "0/2")
	for name, b := range sampleDir(t, bundle, "--batch", "2", "--shard", "1/2") {
		if _, dup := union[name]; dup {
			t.Errorf("%s written by both shards", name)
		}
		union[name] = b
	}
	sameSampleFiles(t, "shards 0/2 + 1/2 vs unsharded", ref, union)
	other := sampleDir(t, bundle, "--seed", "43")
	differ := 0
	for name, b := range ref {
		if !bytes.Equal(other[name], b) {
			differ++
		}
	}
	if differ == 0 {
		t.Error("seeds 42 and 43 wrote the same files")
	}
}

func TestSampleBadBundleOrLabelFails(t *testing.T) {
	bundle := sampleBundle(t)
	out := filepath.Join(t.TempDir(), "x.pcap")
	if code := run([]string{"netssm-cli", "-q", "sample", "--model", bundle, "--label", "video", "-o", out}); code != 2 {
		t.Errorf("unknown label: exit code %d, want 2", code)
	}
	step := filepath.Join(bundle, "step.onnx")
	data, err := os.ReadFile(step)
	if err != nil {
		t.Fatal(err)
	}
	data[100] ^= 1
	if err := os.WriteFile(step, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"netssm-cli", "-q", "sample", "--model", bundle, "--label", "web", "-o", out}); code != 1 {
		t.Errorf("tampered bundle: exit code %d, want 1", code)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed run left an output file")
	}
}
