package ort

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	ortgo "github.com/yalue/onnxruntime_go"
)

// ProviderPath is where the CUDA provider must sit: beside the core library.
func ProviderPath(coreLib string) string {
	return filepath.Join(filepath.Dir(coreLib), "libonnxruntime_providers_cuda.so")
}

// CUDAStatus says whether the CUDA execution provider can be used with the
// initialised library, and if not, why (one line naming the missing piece).
func CUDAStatus() error {
	if initInfo == nil {
		return fmt.Errorf("ONNX Runtime is not initialised")
	}
	return checkCUDA(initInfo.Path)
}

func checkCUDA(coreLib string) error {
	prov := ProviderPath(coreLib)
	if !fileExists(prov) {
		return fmt.Errorf("the CUDA provider %s is not installed: run `netssm-cli setup --ep cuda`", prov)
	}
	if !haveGPU() {
		return fmt.Errorf("no NVIDIA GPU is visible (no /dev/nvidia0 and no driver in /proc/driver/nvidia): use --ep cpu")
	}
	if missing := MissingLibraries(prov); len(missing) > 0 {
		return fmt.Errorf("the CUDA provider needs %s, which this machine lacks: install CUDA 13 and cuDNN 9 (or the nvidia-* Python wheels) and add their lib directories to LD_LIBRARY_PATH", strings.Join(missing, ", "))
	}
	opts, err := ortgo.NewSessionOptions()
	if err != nil {
		return err
	}
	defer opts.Destroy()
	return appendCUDA(opts, 0)
}

func haveGPU() bool {
	if _, err := os.Stat("/dev/nvidia0"); err == nil {
		return true
	}
	_, err := os.Stat("/proc/driver/nvidia/version")
	return err == nil
}

func appendCUDA(opts *ortgo.SessionOptions, device int) error {
	if initInfo != nil {
		prov := ProviderPath(initInfo.Path)
		if !fileExists(prov) {
			return fmt.Errorf("--ep cuda: the CUDA provider %s is not installed: run `netssm-cli setup --ep cuda`", prov)
		}
		if missing := MissingLibraries(prov); len(missing) > 0 {
			return fmt.Errorf("--ep cuda: the CUDA provider needs %s, which this machine lacks: install CUDA 13 and cuDNN 9 and add them to LD_LIBRARY_PATH, or use --ep cpu", strings.Join(missing, ", "))
		}
	}
	if !haveGPU() {
		return fmt.Errorf("--ep cuda: no NVIDIA GPU is visible on this machine: use --ep cpu")
	}
	cuda, err := ortgo.NewCUDAProviderOptions()
	if err != nil {
		return fmt.Errorf("--ep cuda: this ONNX Runtime library cannot create CUDA options: %w", err)
	}
	defer cuda.Destroy()
	if err := cuda.Update(map[string]string{"device_id": strconv.Itoa(device)}); err != nil {
		return fmt.Errorf("--ep cuda: setting device %d: %w", device, err)
	}
	if err := opts.AppendExecutionProviderCUDA(cuda); err != nil {
		return fmt.Errorf("--ep cuda: loading the CUDA provider failed: %w", err)
	}
	return nil
}

// MissingLibraries lists the shared libraries a library needs (DT_NEEDED)
// that the dynamic loader would not find: not beside it, not in
// LD_LIBRARY_PATH, not in the loader cache.
func MissingLibraries(lib string) []string {
	f, err := elf.Open(lib)
	if err != nil {
		return []string{fmt.Sprintf("(cannot read %s: %v)", lib, err)}
	}
	defer f.Close()
	needed, err := f.ImportedLibraries()
	if err != nil {
		return []string{fmt.Sprintf("(cannot read the dependencies of %s: %v)", lib, err)}
	}
	dirs := []string{filepath.Dir(lib)}
	dirs = append(dirs, filepath.SplitList(os.Getenv("LD_LIBRARY_PATH"))...)
	dirs = append(dirs, systemLibDirs()...)
	dirs = append(dirs, "/lib/x86_64-linux-gnu", "/lib64", "/lib")
	cached := ldconfigCache()
	var missing []string
	for _, n := range needed {
		if cached[n] {
			continue
		}
		found := false
		for _, d := range dirs {
			if d != "" && fileExists(filepath.Join(d, n)) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, n)
		}
	}
	return missing
}

func ldconfigCache() map[string]bool {
	m := map[string]bool{}
	for _, bin := range []string{"ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"} {
		out, err := exec.Command(bin, "-p").Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			line = strings.TrimSpace(line)
			if i := strings.IndexByte(line, ' '); i > 0 {
				m[line[:i]] = true
			}
		}
		break
	}
	return m
}
