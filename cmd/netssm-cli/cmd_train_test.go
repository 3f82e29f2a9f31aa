package main

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTrainUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d.parquet")
	out := filepath.Join(dir, "run")
	base := []string{"train", "--data", data, "--steps", "2", "--out", out}
	for _, args := range [][]string{
		{"train", "--steps", "2", "--out", out},
		{"train", "--data", data, "--out", out},
		append(append([]string{}, base...), "--chunk", "-1"),
		append(append([]string{}, base...), "--min-lr-ratio", "1.5"),
		append(append([]string{}, base...), "--ctx", "1"),
		append(append([]string{}, base...), "--data-mode", "shuffled"),
		append(append([]string{}, base...), "--data-mode", "random", "--remap-addresses"),
	} {
		msg, code := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(msg, "usage") {
			t.Errorf("%v: exit %d, want 2 with a usage line:\n%s", args, code, msg)
		}
	}
}

// The SSD chunk length is a speed knob: the model computes the same
// function for every chunk length, so the first losses of two runs that
// differ only in --chunk agree (to float32 reassociation), and the run
// records the chunk length it used (export and resume take it from there).
func TestTrainChunkLengthChangesSpeedNotLosses(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d.parquet")
	if msg, code := runCLI(t, nil, "-q", "tokenize", "-o", data, projectCaptures(t)); code != 0 {
		t.Fatalf("tokenize exit %d:\n%s", code, msg)
	}
	losses := map[string][]float64{}
	for _, chunk := range []string{"16", "0"} {
		out := filepath.Join(dir, "run-"+chunk)
		msg, code := runCLI(t, nil, "-q", "train", "--data", data, "--val-frac", "0", "--preset", "tiny", "--ctx", "96",
			"--batch", "2", "--chunk", chunk, "--steps", "3", "--eval-every", "0", "--seed", "7", "--out", out)
		if code != 0 {
			t.Fatalf("--chunk %s: exit %d:\n%s", chunk, code, msg)
		}
		var cfg struct {
			Model struct {
				ChunkSize int `json:"chunk_size"`
			} `json:"model"`
		}
		raw, err := os.ReadFile(filepath.Join(out, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"16": 16, "0": 64}[chunk] // tiny's own is 64
		if cfg.Model.ChunkSize != want {
			t.Errorf("--chunk %s: config.json records chunk_size %d, want %d", chunk, cfg.Model.ChunkSize, want)
		}
		losses[chunk] = metricLosses(t, filepath.Join(out, "metrics.jsonl"))
	}
	a, b := losses["16"], losses["0"]
	if len(a) != 3 || len(b) != 3 {
		t.Fatalf("losses per run: %d and %d, want 3", len(a), len(b))
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-4*math.Abs(b[i]) {
			t.Errorf("step %d: loss %.7f with chunk 16, %.7f with chunk 64", i+1, a[i], b[i])
		}
	}
}

func metricLosses(t *testing.T, path string) []float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var losses []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row struct {
			Loss    float64  `json:"loss"`
			ValLoss *float64 `json:"val_loss"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if row.ValLoss == nil {
			losses = append(losses, row.Loss)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return losses
}
