package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netssm/netssm/export"
	"github.com/netssm/netssm/model"
)

func TestModelInfoDescribesPresetAndBundle(t *testing.T) {
	out, code := runCLI(t, nil, "model", "info", "--preset", "paper")
	if code != 0 || !strings.Contains(out, "90577344") || !strings.Contains(out, "step.onnx") {
		t.Fatalf("model info --preset paper: exit %d\n%s", code, out)
	}

	c, _ := model.Preset("tiny")
	dir := filepath.Join(t.TempDir(), "bundle")
	if _, err := export.Write(dir, export.Info{Config: c}, model.InitParams(c, 1), export.Options{StepBatch: 2}); err != nil {
		t.Fatal(err)
	}
	out, code = runCLI(t, nil, "model", "info", dir)
	if code != 0 || !strings.Contains(out, "73776") || !strings.Contains(out, "batch 2") {
		t.Fatalf("model info BUNDLE: exit %d\n%s", code, out)
	}

	// A changed graph: exit 1, one line naming the file.
	path := filepath.Join(dir, export.StepFile)
	raw, _ := os.ReadFile(path)
	raw[len(raw)/2] ^= 1
	os.WriteFile(path, raw, 0o644)
	out, code = runCLI(t, nil, "model", "info", dir)
	if code != 1 || !strings.Contains(out, export.StepFile) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("model info of a changed bundle: exit %d, want 1 and one line naming %s\n%s", code, export.StepFile, out)
	}
}

func TestModelInfoUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"model", "info"},
		{"model", "info", "--preset", "huge"},
		{"model", "info", "--preset", "tiny", "some/bundle"},
	} {
		if out, code := runCLI(t, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, out)
		}
	}
}
