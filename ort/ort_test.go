package ort

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLocateNamesTheMissingEnvironmentPath(t *testing.T) {
	t.Setenv("NETSSM_ORT_LIB", "/nonexistent/libonnxruntime.so")
	_, err := Locate("")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	for _, want := range []string{"NETSSM_ORT_LIB", "/nonexistent/libonnxruntime.so", "does not exist"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLocateFlagWinsOverEnvironment(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "lib.so")
	os.WriteFile(lib, []byte("x"), 0o644)
	t.Setenv("NETSSM_ORT_LIB", "/nonexistent")
	loc, err := Locate(lib)
	if err != nil || loc.Path != lib || loc.Source != FromFlag {
		t.Fatalf("Locate = %+v, %v", loc, err)
	}
}

func TestLocateEmptyCacheListsWhereItLooked(t *testing.T) {
	t.Setenv("NETSSM_ORT_LIB", "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("PATH", "") // no python3 either
	_, err := Locate("")
	if err == nil {
		t.Skip("a system ONNX Runtime " + Version + " is installed; nothing to check")
	}
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "netssm-cli setup") {
		t.Fatalf("err = %v", err)
	}
}

func TestNonELFFileIsRefusedBeforeLoading(t *testing.T) {
	p := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	os.WriteFile(p, []byte("<html>not a library</html>"), 0o644)
	err := checkSharedObject(p)
	if err == nil || !strings.Contains(err.Error(), "not an ELF file") {
		t.Fatalf("err = %v", err)
	}
}

func TestIntegrityIsNpmSRI(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.tgz")
	os.WriteFile(p, []byte("abc"), 0o644)
	sum := sha512.Sum512([]byte("abc"))
	want := "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
	got, err := integrityOf(p)
	if err != nil || got != want {
		t.Fatalf("integrityOf = %q, %v; want %q", got, err, want)
	}
}

func TestSetupWithoutNpmSaysHowToGetIt(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("PATH", t.TempDir())
	_, err := Setup(context.Background(), SetupOptions{})
	if err == nil || !strings.Contains(err.Error(), "npm client is not installed") {
		t.Fatalf("err = %v", err)
	}
}

func TestSetupWithUnreachableRegistrySaysSo(t *testing.T) {
	if !haveCommand("npm") {
		t.Skip("npm not installed")
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("npm_config_registry", "http://127.0.0.1:9/") // discard port: connection refused
	t.Setenv("npm_config_fetch_retries", "0")
	t.Setenv("npm_config_cache", t.TempDir())
	_, err := Setup(context.Background(), SetupOptions{})
	if err == nil || !strings.Contains(err.Error(), "registry is unreachable") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnknownExecutionProviderIsRefused(t *testing.T) {
	_, err := Setup(context.Background(), SetupOptions{EP: "tpu"})
	if err == nil || !strings.Contains(err.Error(), "unknown execution provider") {
		t.Fatalf("err = %v", err)
	}
}

// TestConcurrentSetupsLeaveOneIntactLibrary starts two processes that run
// Setup at the same moment on an empty cache: both must succeed and the
// library must match the tarball's contents (checked by the manifest hash).
func TestConcurrentSetupsLeaveOneIntactLibrary(t *testing.T) {
	if os.Getenv("NETSSM_SETUP_CHILD") != "" {
		if _, err := Setup(context.Background(), SetupOptions{}); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !haveCommand("npm") {
		t.Skip("npm not installed: provisioning cannot be exercised")
	}
	if testing.Short() {
		t.Skip("downloads ONNX Runtime; skipped with -short")
	}
	cache := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	outs := make([][]byte, 2)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentSetupsLeaveOneIntactLibrary$")
			cmd.Env = append(os.Environ(), "NETSSM_SETUP_CHILD=1", "XDG_CACHE_HOME="+cache)
			outs[i], errs[i] = cmd.CombinedOutput()
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("setup %d failed: %v\n%s", i, err, outs[i])
		}
	}
	dir := filepath.Join(cache, "netssm", "ort", Version)
	man := readManifest(dir)
	want := man.Files[LibName]
	got, err := sha256File(filepath.Join(dir, LibName))
	if err != nil || want == "" || got != want {
		t.Fatalf("library hash %s, manifest %s, err %v", got, want, err)
	}
	if err := checkSharedObject(filepath.Join(dir, LibName)); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".setup-") {
			t.Errorf("temporary directory left behind: %s", e.Name())
		}
	}
}
