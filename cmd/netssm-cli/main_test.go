package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cli builds the binary once per test binary and runs it.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "netssm-cli-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "netssm-cli")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runCLI(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// runOK runs the CLI and fails the test, naming the command, unless it
// exits 0; it returns the output.
func runOK(t *testing.T, args ...string) string {
	t.Helper()
	out, code := runCLI(t, nil, args...)
	if code != 0 {
		t.Fatalf("netssm-cli %s: exit %d:\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func TestUsageErrorsExitTwoWithHelp(t *testing.T) {
	for _, args := range [][]string{
		{"bogus-command"},
		{"setup", "--no-such-flag"},
		{"setup", "--ep", "tpu"},
		{"train", "--data", "x.parquet", "--steps", "1", "--out", "r", "--io-binding", "maybe"},
		{"version", "extra-arg"},
	} {
		out, code := runCLI(t, nil, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, out)
		}
		if !strings.Contains(out, "usage") && !strings.Contains(out, "USAGE") {
			t.Errorf("%v: no usage text in\n%s", args, out)
		}
	}
}

func TestVersionWithMissingLibraryExitsOneWithOneClearLine(t *testing.T) {
	out, code := runCLI(t, []string{"NETSSM_ORT_LIB=/nonexistent/libonnxruntime.so"}, "version")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "NETSSM_ORT_LIB=/nonexistent/libonnxruntime.so does not exist") {
		t.Fatalf("unclear message:\n%s", out)
	}
}

func TestVersionReportsTheRuntime(t *testing.T) {
	out, code := runCLI(t, nil, "version")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "ONNX Runtime 1.29.0") || !strings.Contains(out, "CUDA provider:") {
		t.Fatalf("version output:\n%s", out)
	}
}

func TestEveryCommandHelpHasAnExample(t *testing.T) {
	app := newApp()
	for _, c := range app.Commands {
		if c.Name == "help" {
			continue
		}
		checkExample(t, c.Name, c.Description)
		for _, s := range c.Subcommands {
			if s.Name == "help" { // added by urfave/cli itself
				continue
			}
			checkExample(t, c.Name+" "+s.Name, s.Description)
		}
	}
}

func checkExample(t *testing.T, name, desc string) {
	if !strings.Contains(desc, "Example") {
		t.Errorf("`netssm-cli %s --help` has no example", name)
	}
}
