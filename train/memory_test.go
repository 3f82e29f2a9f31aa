package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeNvidiaSMI puts an nvidia-smi on PATH that prints free MiB.
func fakeNvidiaSMI(t *testing.T, free string) {
	dir := t.TempDir()
	script := "#!/bin/sh\necho " + free + "\n"
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
}

func TestCheckGPUMemoryRefusesAnEstimateOverTheFreeMemory(t *testing.T) {
	fakeNvidiaSMI(t, "8192") // 8 GiB free
	if err := CheckGPUMemory(6<<30, 0, "training"); err != nil {
		t.Fatalf("6 GiB on a GPU with 8 free: %v", err)
	}
	err := CheckGPUMemory(20<<30, 0, "training with --batch 4 --ctx 16384")
	if err == nil || !strings.Contains(err.Error(), "--ctx 16384") || !strings.Contains(err.Error(), "8.0 GiB free") {
		t.Fatalf("20 GiB on a GPU with 8 free: %v", err)
	}
}

func TestCheckGPUMemoryPassesWhenItCannotTell(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no nvidia-smi
	if err := CheckGPUMemory(1<<40, 0, "training"); err != nil {
		t.Fatalf("no nvidia-smi: %v", err)
	}
	fakeNvidiaSMI(t, "No devices were found")
	if err := CheckGPUMemory(1<<40, 0, "training"); err != nil {
		t.Fatalf("unreadable nvidia-smi output: %v", err)
	}
}
