package pipeline_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netssm/netssm/arrowdata/pipeline"
	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/tokenizer"
)

// netssmExample returns ../shared/conformance/netssm-example, or skips.
func netssmExample(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(capturetest.RepoRoot(t), "..", "shared", "conformance", "netssm-example")
	if _, err := os.Stat(filepath.Join(dir, "expected.jsonl")); err != nil {
		t.Skip("../shared/conformance/netssm-example is absent: NetSSM conformance skipped")
	}
	return dir
}

// sameNetSSMLines compares two JSONL files record by record (Data first,
// naming the first differing packet), then byte for byte.
func sameNetSSMLines(t *testing.T, got, want []byte) {
	t.Helper()
	g := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	w := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
	if len(g) != len(w) {
		t.Fatalf("%d lines, want %d", len(g), len(w))
	}
	for i := range w {
		var gr, wr pipeline.NetSSMRecord
		if err := json.Unmarshal([]byte(g[i]), &gr); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if err := json.Unmarshal([]byte(w[i]), &wr); err != nil {
			t.Fatalf("expected line %d: %v", i+1, err)
		}
		if gr.Data != wr.Data {
			gp, wp := strings.Split(gr.Data, " <|pkt|> "), strings.Split(wr.Data, " <|pkt|> ")
			for k := range min(len(gp), len(wp)) {
				if gp[k] != wp[k] {
					t.Fatalf("line %d (%s): packet %d differs\n got %s\nwant %s", i+1, wr.Filename, k, gp[k], wp[k])
				}
			}
			t.Fatalf("line %d (%s): %d packets, want %d", i+1, wr.Filename, len(gp), len(wp))
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("Data strings agree but the files differ (Hash, Filename, OrigLen or formatting)")
	}
}

// Tokenizing NetSSM's example captures with the netssm layout and
// exporting them gives what NetSSM's own preprocessor wrote for them.
func TestNetSSMLayoutReproducesNetSSMsPreprocessor(t *testing.T) {
	ex := netssmExample(t)
	dir := t.TempDir()
	labels, err := pipeline.ReadLabelsCSV(filepath.Join(ex, "input", "labels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := pipeline.ExpandInputs([]string{filepath.Join(ex, "input")})
	if err != nil {
		t.Fatal(err)
	}
	ds := filepath.Join(dir, "d.parquet")
	rep, err := pipeline.Tokenize(ds, files, pipeline.TokenizeOptions{Spec: tokenizer.NetSSMSpec(""), Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Spec.Link != tokenizer.LinkEthernet {
		t.Errorf("link %q read from the captures, want ethernet", rep.Spec.Link)
	}
	out := filepath.Join(dir, "out.jsonl")
	if _, err := pipeline.ExportJSONL(ds, out, pipeline.ExportJSONLOptions{Dir: "input"}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	want, err := os.ReadFile(filepath.Join(ex, "expected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	sameNetSSMLines(t, got, want)
}

// Importing NetSSM's JSONL and exporting the dataset gives the same file.
func TestNetSSMJSONLImportExportIsIdentityOnNetSSMsFile(t *testing.T) {
	ex := netssmExample(t)
	checkImportExportIdentity(t, filepath.Join(ex, "expected.jsonl"), "input")
}

func checkImportExportIdentity(t *testing.T, jsonl, dir string) {
	t.Helper()
	tmp := t.TempDir()
	ds := filepath.Join(tmp, "d.parquet")
	n, spec, err := pipeline.ImportJSONL([]string{jsonl}, ds, pipeline.ImportJSONLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || spec.Layout != tokenizer.LayoutNetSSM {
		t.Fatalf("imported %d traces, layout %s", n, spec.Layout)
	}
	out := filepath.Join(tmp, "back.jsonl")
	if _, err := pipeline.ExportJSONL(ds, out, pipeline.ExportJSONLOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile(jsonl)
	sameNetSSMLines(t, got, want)
}
