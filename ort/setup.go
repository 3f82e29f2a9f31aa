package ort

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/netssm/netssm/internal/progress"
)

// npmPackage is one npm package netssm takes files from.
type npmPackage struct {
	Spec  string            // name@version
	Files map[string]string // path inside the tarball → file name in the cache
}

// cpuPackage is Microsoft's ONNX Runtime build shipped in onnxruntime-node.
func cpuPackage() (npmPackage, error) {
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || arch == "" {
		return npmPackage{}, fmt.Errorf("netssm-cli setup supports linux/amd64 and linux/arm64, not %s/%s; install ONNX Runtime %s yourself and set NETSSM_ORT_LIB", runtime.GOOS, runtime.GOARCH, Version)
	}
	return npmPackage{
		Spec:  "onnxruntime-node@" + Version,
		Files: map[string]string{"package/bin/napi-v6/linux/" + arch + "/libonnxruntime.so.1": LibName},
	}, nil
}

// cudaPackage carries the CUDA execution provider built for ONNX Runtime
// 1.29.0 and CUDA 13.
var cudaPackage = npmPackage{
	Spec: "com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9",
	Files: map[string]string{
		"package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so":   "libonnxruntime_providers_cuda.so",
		"package/Plugins/Linux/x64/libonnxruntime_providers_shared.so": "libonnxruntime_providers_shared.so",
	},
}

// SetupOptions configure Setup.
type SetupOptions struct {
	EP       string // "cpu" (default) or "cuda" (also fetches the CUDA provider)
	Progress bool   // draw a download progress bar (only shown on a terminal)
}

// SetupResult says what Setup did.
type SetupResult struct {
	Dir          string
	LibPath      string
	Installed    []string // packages fetched by this call (empty if all were cached)
	MissingCUDA  []string // CUDA libraries the provider needs that this machine lacks
	ProviderPath string   // the CUDA provider library, with --ep cuda
}

// manifest records what was installed, written last into the cache directory.
type manifest struct {
	Version  string            `json:"onnxruntime_version"`
	Packages map[string]string `json:"packages"` // spec → integrity
	Files    map[string]string `json:"files"`    // file → sha256
}

// Setup provisions ONNX Runtime Version into the user cache through the npm
// client. It is safe to run concurrently: a file lock serialises installers,
// and files appear in the cache only by rename, complete.
func Setup(ctx context.Context, o SetupOptions) (SetupResult, error) {
	var res SetupResult
	pkgs := []npmPackage{}
	cpu, err := cpuPackage()
	if err != nil {
		return res, err
	}
	pkgs = append(pkgs, cpu)
	switch o.EP {
	case "", "cpu":
	case "cuda":
		if runtime.GOARCH != "amd64" {
			return res, fmt.Errorf("the CUDA provider package exists for linux/amd64 only, not %s", runtime.GOARCH)
		}
		pkgs = append(pkgs, cudaPackage)
	default:
		return res, fmt.Errorf("unknown execution provider %q (cpu | cuda)", o.EP)
	}
	dir, err := CacheDir()
	if err != nil {
		return res, err
	}
	res.Dir, res.LibPath = dir, filepath.Join(dir, LibName)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return res, fmt.Errorf("creating the cache directory %s: %w", parent, err)
	}
	lock := flock.New(filepath.Join(parent, ".setup.lock"))
	if err := lock.Lock(); err != nil {
		return res, fmt.Errorf("locking %s: %w", lock.Path(), err)
	}
	defer lock.Unlock()

	man := readManifest(dir)
	for _, p := range pkgs {
		if man.Packages[p.Spec] != "" && allExist(dir, p.Files) {
			continue
		}
		if !haveCommand("npm") {
			return res, fmt.Errorf("the npm client is not installed, so ONNX Runtime %s cannot be fetched: install Node.js and npm (Debian: apt-get install npm), then run `netssm-cli setup`; or set NETSSM_ORT_LIB to an ONNX Runtime %s library", Version, Version)
		}
		integrity, err := install(ctx, p, dir, o.Progress)
		if err != nil {
			return res, err
		}
		man.Packages[p.Spec] = integrity
		for _, name := range p.Files {
			sum, err := sha256File(filepath.Join(dir, name))
			if err != nil {
				return res, err
			}
			man.Files[name] = sum
		}
		if err := writeManifest(dir, man); err != nil {
			return res, err
		}
		res.Installed = append(res.Installed, p.Spec)
	}
	if o.EP == "cuda" {
		res.ProviderPath = filepath.Join(dir, "libonnxruntime_providers_cuda.so")
		res.MissingCUDA = MissingLibraries(res.ProviderPath)
	}
	return res, nil
}

// install fetches one package with `npm pack`, checks it and moves its files
// into dir. It returns the verified integrity string.
func install(ctx context.Context, p npmPackage, dir string, showProgress bool) (string, error) {
	want, err := npmIntegrity(ctx, p.Spec)
	if err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(filepath.Dir(dir), ".setup-")
	if err != nil {
		return "", fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer os.RemoveAll(work)

	tarball, err := npmPack(ctx, p.Spec, work, showProgress)
	if err != nil {
		return "", err
	}
	got, err := integrityOf(tarball)
	if err != nil {
		return "", err
	}
	if got != want {
		return "", fmt.Errorf("integrity mismatch for %s: the registry reports %s, the downloaded tarball is %s; the download was corrupted or tampered with: run `netssm-cli setup` again, and if it persists check your npm registry configuration", p.Spec, want, got)
	}
	stage := filepath.Join(work, "lib")
	if err := extract(tarball, p.Files, stage); err != nil {
		return "", fmt.Errorf("extracting %s: %w", p.Spec, err)
	}
	for _, name := range p.Files {
		if err := checkSharedObject(filepath.Join(stage, name)); err != nil {
			return "", fmt.Errorf("%s: %w", p.Spec, err)
		}
	}
	// First install: the whole directory appears at once. Later packages
	// (the CUDA provider) add files, each by an atomic rename.
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(stage, dir); err != nil {
			return "", fmt.Errorf("moving the library into %s: %w", dir, err)
		}
		return got, nil
	}
	for _, name := range p.Files {
		if err := os.Rename(filepath.Join(stage, name), filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("moving %s into %s: %w", name, dir, err)
		}
	}
	return got, nil
}

// npmIntegrity asks the registry for a package's dist.integrity.
func npmIntegrity(ctx context.Context, spec string) (string, error) {
	out, err := runNPM(ctx, "", "view", spec, "dist.integrity", "--json")
	if err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(bytes.TrimSpace(out), &s); err != nil || !strings.HasPrefix(s, "sha512-") {
		return "", fmt.Errorf("npm view %s dist.integrity returned %q, not a sha512 integrity string", spec, strings.TrimSpace(string(out)))
	}
	return s, nil
}

// npmPack runs `npm pack` into dir with a private npm cache under dir, whose
// growth drives the progress bar. It returns the tarball's path.
func npmPack(ctx context.Context, spec, dir string, showProgress bool) (string, error) {
	cache := filepath.Join(dir, "npm-cache")
	var bar *progress.Bar
	if showProgress {
		bar = progress.NewBytes(-1, "fetching "+spec)
	} else {
		bar = &progress.Bar{}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				bar.Set(dirSize(cache))
			}
		}
	}()
	out, err := runNPM(ctx, dir, "pack", spec, "--json", "--pack-destination", dir, "--cache", cache)
	close(done)
	bar.Finish()
	if err != nil {
		return "", err
	}
	var packed []struct {
		Filename string `json:"filename"`
	}
	if err := json.Unmarshal(out, &packed); err != nil || len(packed) != 1 {
		return "", fmt.Errorf("npm pack %s: unexpected output %q", spec, truncate(string(out), 200))
	}
	return filepath.Join(dir, filepath.Base(packed[0].Filename)), nil
}

// runNPM runs the npm client and turns its failures into one clear line.
func runNPM(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "npm", append(args, "--no-fund", "--no-audit", "--loglevel=error")...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		return out, nil
	}
	msg := stderr.String() + string(out)
	for _, code := range []string{"ENOTFOUND", "ECONNREFUSED", "ETIMEDOUT", "EAI_AGAIN", "ECONNRESET", "ENETUNREACH", "EHOSTUNREACH", "network"} {
		if strings.Contains(msg, code) {
			return nil, fmt.Errorf("the npm registry is unreachable (npm %s: %s): check the network or npm's registry setting (`npm config get registry`), or set NETSSM_ORT_LIB to an ONNX Runtime %s library", args[0], code, Version)
		}
	}
	return nil, fmt.Errorf("npm %s failed: %v: %s", strings.Join(args[:2], " "), err, truncate(strings.TrimSpace(msg), 400))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// integrityOf computes an npm (SRI) sha512 integrity string.
func integrityOf(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("opening the downloaded tarball: %w", err)
	}
	defer f.Close()
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return "sha512-" + base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// extract copies the wanted tarball members into dir.
func extract(tarball string, want map[string]string, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s is not a gzip tarball: %w", tarball, err)
	}
	tr := tar.NewReader(gz)
	found := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", tarball, err)
		}
		name, ok := want[h.Name]
		if !ok {
			continue
		}
		out, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, tr); err != nil {
			out.Close()
			return fmt.Errorf("writing %s: %w", name, err)
		}
		if err := out.Close(); err != nil {
			return err
		}
		found++
	}
	if found != len(want) {
		var names []string
		for k := range want {
			names = append(names, k)
		}
		return fmt.Errorf("the tarball lacks some of %s", strings.Join(names, ", "))
	}
	return nil
}

func allExist(dir string, files map[string]string) bool {
	for _, name := range files {
		if !fileExists(filepath.Join(dir, name)) {
			return false
		}
	}
	return true
}

func readManifest(dir string) manifest {
	m := manifest{Version: Version, Packages: map[string]string{}, Files: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err == nil {
		var got manifest
		if json.Unmarshal(b, &got) == nil && got.Packages != nil && got.Files != nil {
			m = got
		}
	}
	return m
}

func writeManifest(dir string, m manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".manifest.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the cache manifest: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, "manifest.json"))
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
