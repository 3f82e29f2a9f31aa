package train

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// AvailableMemory reads MemAvailable from /proc/meminfo (bytes); 0 if unknown.
func AvailableMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// CheckMemory refuses a run whose estimated peak exceeds what the machine
// has available, before anything large is allocated.
func CheckMemory(estimate int64, what string) error {
	avail := AvailableMemory()
	if avail == 0 || estimate <= avail*9/10 {
		return nil
	}
	return fmt.Errorf("%s needs about %.1f GiB but only %.1f GiB is available: lower --ctx or --batch (memory grows linearly with both)",
		what, float64(estimate)/(1<<30), float64(avail)/(1<<30))
}

// FreeGPUMemory asks nvidia-smi for the free memory of a GPU (bytes); 0 if
// it cannot tell (no nvidia-smi, no such GPU, unreadable output).
func FreeGPUMemory(device int) int64 {
	out, err := exec.Command("nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits", "-i", strconv.Itoa(device)).Output()
	if err != nil {
		return 0
	}
	mib, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || mib <= 0 {
		return 0
	}
	return mib << 20
}

// CheckGPUMemory is CheckMemory for a run on a CUDA GPU, whose activations
// live in the GPU's memory.
func CheckGPUMemory(estimate int64, device int, what string) error {
	free := FreeGPUMemory(device)
	if free == 0 || estimate <= free*9/10 {
		return nil
	}
	return fmt.Errorf("%s needs about %.1f GiB of GPU memory but GPU %d has %.1f GiB free: lower --ctx or --batch (memory grows linearly with both)",
		what, float64(estimate)/(1<<30), device, float64(free)/(1<<30))
}
