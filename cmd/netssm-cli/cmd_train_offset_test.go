package main

import (
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/netssm/netssm/train"
)

// TestLossByOffsetAddsUpToTheFinalValidationLoss: scoring every held-out
// token of a run's last checkpoint by packet offset gives, over all offsets,
// the loss the run's final validation measured on the same tokens, and
// packet starts (offset 0) get a row of their own.
func TestLossByOffsetAddsUpToTheFinalValidationLoss(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d.parquet")
	if msg, code := runCLI(t, nil, "-q", "tokenize", "-o", data, projectCaptures(t)); code != 0 {
		t.Fatalf("tokenize exit %d:\n%s", code, msg)
	}
	run := filepath.Join(dir, "run")
	if msg, code := runCLI(t, nil, "-q", "train", "--data", data, "--val-frac", "0.4", "--preset", "tiny", "--ctx", "64", "--batch", "2",
		"--steps", "3", "--eval-every", "0", "--eval-tokens", "1000", "--out", run); code != 0 {
		t.Fatalf("train: exit %d:\n%s", code, msg)
	}
	out, code := runCLI(t, nil, "-q", "train", "loss-by-offset", "--tokens", "0", run)
	if code != 0 {
		t.Fatalf("loss-by-offset: exit %d:\n%s", code, out)
	}
	m := regexp.MustCompile(`: (\d+) tokens, ([0-9.]+) nats/token`).FindStringSubmatch(out)
	if m == nil || !regexp.MustCompile(`(?m)^\s+0\s+0\.\d+`).MatchString(out) {
		t.Fatalf("no total line or no offset-0 row in:\n%s", out)
	}
	total, _ := strconv.ParseFloat(m[2], 64)
	rows, err := train.ReadMetrics(filepath.Join(run, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	last := rows[len(rows)-1]
	if !last.ValFull || last.ValLoss == nil {
		t.Fatalf("the run's last metrics row is not the final validation: %+v", last)
	}
	if math.Abs(total-*last.ValLoss) > 1e-3 {
		t.Fatalf("loss by offset totals %.4f nats/token, the final validation measured %.4f", total, *last.ValLoss)
	}
	if msg, code := runCLI(t, nil, "train", "loss-by-offset"); code != 2 || !strings.Contains(msg, "RUN_DIR") {
		t.Errorf("no RUN_DIR: exit %d (want 2):\n%s", code, msg)
	}
}
