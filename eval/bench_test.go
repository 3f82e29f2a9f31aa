package eval

import (
	"path/filepath"
	"testing"
)

// Benchmarks are opt-in (go test -bench). Each reports packets/s over both
// sides and the seconds one whole evaluation takes: reading the captures,
// every metric, the classifier, the privacy search and writing the report.

func benchmarkRun(b *testing.B, cfg Config, packets int64) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cfg.OutDir = filepath.Join(b.TempDir(), "report")
		if _, err := Run(cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(packets)/sec, "packets/s")
	b.ReportMetric(sec, "s/eval")
}

// BenchmarkEvalSharedHalves evaluates one half of the shared captures
// (about 230k IP packets) against the other half (about 210k), with the
// first half also as training set.
func BenchmarkEvalSharedHalves(b *testing.B) {
	a, c := sharedHalves(b)
	var pa, pc []string
	var n int64
	for _, t := range a {
		pa = append(pa, t.Path)
		n += int64(len(t.Packets))
	}
	for _, t := range c {
		pc = append(pc, t.Path)
		n += int64(len(t.Packets))
	}
	benchmarkRun(b, Config{Real: pa, Synth: pc, Train: pa}, n)
}

// BenchmarkEvalGenerated250k evaluates 250k generated packets against 250k
// others (and the real side as training set); it needs no shared data.
func BenchmarkEvalGenerated250k(b *testing.B) {
	dir := b.TempDir()
	labels := []string{"bulk", "call"}
	real := makeWorkloadCaptures(b, filepath.Join(dir, "real"), labels, 5, 25_000, 50)
	synth := makeWorkloadCaptures(b, filepath.Join(dir, "synth"), labels, 5, 25_000, 51)
	benchmarkRun(b, Config{Real: real, Synth: synth, Train: real}, 500_000)
}
