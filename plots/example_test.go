package plots_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/netssm/netssm/plots"
)

// A figure is data: build it, save it as PNG and SVG, keep its data as JSON
// and redraw it later with other options.
func ExampleCDF() {
	dir, _ := os.MkdirTemp("", "plots-example")
	defer os.RemoveAll(dir)
	samples := map[string][]float64{
		"real":      {60, 60, 1500, 1500, 1500},
		"synthetic": {60, 1500, 1500, 1500, 1500},
	}
	if err := plots.CDF(filepath.Join(dir, "wire_len"), "Wire length", "IP packet length (bytes)", false, samples, "real", "synthetic"); err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range []string{"wire_len.png", "wire_len.svg"} {
		_, err := os.Stat(filepath.Join(dir, f))
		fmt.Println(f, err == nil)
	}
	s := plots.ECDF("real", samples["real"], 100)
	fmt.Println(s.X, s.Y)
	// Output:
	// wire_len.png true
	// wire_len.svg true
	// [60 1500] [0.4 1]
}
