package pipeline_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/netssm/netssm/arrowdata/pipeline"
	"github.com/netssm/netssm/capture/capturetest"
	"github.com/netssm/netssm/tokenizer"
)

// TestDuckDBReadsDataset opens a dataset in DuckDB (scripts/parquet-check,
// npm package @duckdb/node-api) and checks its documented columns there. It
// runs `npm ci` in that folder when its node_modules is missing, and skips
// when node or npm are not installed.
func TestDuckDBReadsDataset(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	dir := filepath.Join(capturetest.RepoRoot(t), "scripts", "parquet-check")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Skip("npm not installed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in scripts/parquet-check: %v\n%s", err, out)
		}
	}
	data := filepath.Join(t.TempDir(), "d.parquet")
	rep, err := pipeline.Tokenize(data, capturetest.ProjectCaptures(t), pipeline.TokenizeOptions{Spec: tokenizer.DefaultSpec()})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, filepath.Join(dir, "check.mjs"), data).CombinedOutput()
	if err != nil {
		t.Fatalf("DuckDB check failed: %v\n%s", err, out)
	}
	var s struct{ Traces, Packets, Tokens, VocabSize int }
	var raw map[string]any
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("DuckDB check output: %v\n%s", err, out)
	}
	s.Traces, s.Packets, s.Tokens = int(raw["traces"].(float64)), int(raw["packets"].(float64)), int(raw["tokens"].(float64))
	s.VocabSize = int(raw["vocab_size"].(float64))
	if s.Traces != rep.Traces || s.Packets != rep.Packets || s.Tokens != rep.Tokens || s.VocabSize != rep.Spec.VocabSize {
		t.Fatalf("DuckDB sees %s, tokenize wrote %d traces, %d packets, %d tokens, vocabulary %d", out, rep.Traces, rep.Packets, rep.Tokens, rep.Spec.VocabSize)
	}
	t.Logf("DuckDB: %s", out)
}
