package ort

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Version is the ONNX Runtime release netssm is built and tested against.
const Version = "1.29.0"

// LibName is the file name of the core library inside the cache directory.
const LibName = "libonnxruntime.so.1"

// ErrNotFound is returned (wrapped) when no ONNX Runtime library can be found.
var ErrNotFound = errors.New("ONNX Runtime library not found")

// CacheRoot is netssm's user cache directory: $XDG_CACHE_HOME/netssm, or
// ~/.cache/netssm.
func CacheRoot() (string, error) {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "netssm"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the user cache directory: %w (set XDG_CACHE_HOME)", err)
	}
	return filepath.Join(home, ".cache", "netssm"), nil
}

// CacheDir is where Setup installs ONNX Runtime Version.
func CacheDir() (string, error) {
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "ort", Version), nil
}

// Source says where a library path came from.
type Source string

const (
	FromFlag   Source = "--ort-lib"
	FromEnv    Source = "NETSSM_ORT_LIB"
	FromCache  Source = "user cache"
	FromSystem Source = "system install"
	FromPython Source = "Python onnxruntime"
)

// Location is a resolved library.
type Location struct {
	Path   string
	Source Source
}

// Locate finds the library in the documented order without loading it.
// flagPath is the --ort-lib value ("" when not given). The error wraps
// ErrNotFound and lists every place that was looked at.
func Locate(flagPath string) (Location, error) {
	if flagPath != "" {
		return explicit(flagPath, FromFlag)
	}
	if p := os.Getenv("NETSSM_ORT_LIB"); p != "" {
		return explicit(p, FromEnv)
	}
	var looked []string
	if dir, err := CacheDir(); err == nil {
		p := filepath.Join(dir, LibName)
		if fileExists(p) {
			return Location{p, FromCache}, nil
		}
		looked = append(looked, p)
	}
	for _, dir := range systemLibDirs() {
		p := filepath.Join(dir, "libonnxruntime.so."+Version)
		if fileExists(p) {
			return Location{p, FromSystem}, nil
		}
		looked = append(looked, p)
	}
	if p, ok := pythonLibrary(); ok {
		return Location{p, FromPython}, nil
	}
	looked = append(looked, "python3 -c 'import onnxruntime' (version "+Version+")")
	return Location{}, fmt.Errorf("%w (looked in: %s); run `netssm-cli setup` (needs the npm client) or set NETSSM_ORT_LIB to an ONNX Runtime %s library",
		ErrNotFound, strings.Join(looked, ", "), Version)
}

func explicit(p string, src Source) (Location, error) {
	if !fileExists(p) {
		return Location{}, fmt.Errorf("%w: %s=%s does not exist; point it at libonnxruntime.so of ONNX Runtime %s or unset it to use `netssm-cli setup`'s copy",
			ErrNotFound, src, p, Version)
	}
	return Location{p, src}, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func systemLibDirs() []string {
	arch := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[runtime.GOARCH]
	return []string{"/usr/lib/" + arch, "/usr/local/lib", "/usr/lib", "/usr/lib64"}
}

// pythonLibrary asks a Python onnxruntime package, if any, for its library,
// accepting it only at Version.
func pythonLibrary() (string, bool) {
	py, err := exec.LookPath("python3")
	if err != nil {
		return "", false
	}
	out, err := exec.Command(py, "-c",
		"import onnxruntime, os; print(onnxruntime.__version__); print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))").Output()
	if err != nil {
		return "", false
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || strings.TrimSpace(lines[0]) != Version {
		return "", false
	}
	matches, _ := filepath.Glob(filepath.Join(strings.TrimSpace(lines[1]), "libonnxruntime.so*"))
	for _, m := range matches {
		if fileExists(m) {
			return m, true
		}
	}
	return "", false
}

// checkSharedObject refuses files that are not an ELF shared object for this
// machine's architecture, before they are handed to dlopen.
func checkSharedObject(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not an ONNX Runtime shared library (not an ELF file: %v); run `netssm-cli setup` or point NETSSM_ORT_LIB at libonnxruntime.so %s", path, err, Version)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if f.Type != elf.ET_DYN {
		return fmt.Errorf("%s is an ELF %v, not a shared library; point NETSSM_ORT_LIB at libonnxruntime.so %s", path, f.Type, Version)
	}
	if f.Machine != want {
		return fmt.Errorf("%s is built for %v, this machine needs %v (x86-64 or arm64 ONNX Runtime %s); run `netssm-cli setup`", path, f.Machine, want, Version)
	}
	return nil
}
