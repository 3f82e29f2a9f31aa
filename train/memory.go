package train

import (
	"bufio"
	"fmt"
	"os"
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
