package plots

import (
	"bytes"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestECDFIsMonotoneEndsAtOneAndIsBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, 100_000)
	for i := range x {
		x[i] = float64(rng.IntN(2000))
	}
	s := ECDF("a", x, 300)
	if len(s.X) > 302 || len(s.X) < 10 {
		t.Fatalf("ECDF kept %d points, want ≤ 302", len(s.X))
	}
	for i := 1; i < len(s.X); i++ {
		if s.X[i] <= s.X[i-1] || s.Y[i] < s.Y[i-1] {
			t.Fatalf("not monotone at %d: (%v,%v) after (%v,%v)", i, s.X[i], s.Y[i], s.X[i-1], s.Y[i-1])
		}
	}
	if s.Y[len(s.Y)-1] != 1 {
		t.Fatalf("ECDF ends at %v, want 1", s.Y[len(s.Y)-1])
	}
}

func TestECDFOfSmallSampleIsExact(t *testing.T) {
	s := ECDF("a", []float64{3, 1, 2, 2}, 100)
	wantX, wantY := []float64{1, 2, 3}, []float64{0.25, 0.75, 1}
	if !reflect.DeepEqual(s.X, wantX) || !reflect.DeepEqual(s.Y, wantY) {
		t.Fatalf("ECDF = %v %v, want %v %v", s.X, s.Y, wantX, wantY)
	}
}

func TestSaveWritesPNGAndSVGAndNoPartialFiles(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "iat_cdf")
	samples := map[string][]float64{"real": {0, 1e-6, 1e-3, 0.5, 2}, "synthetic": {0, 0, 1e-4, 1}}
	if err := CDF(base, "Inter-arrival", "inter-arrival time (s)", true, samples, "real", "synthetic"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(base + ".png")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("PNG does not decode: %v", err)
	}
	if w := img.Bounds().Dx(); w != 1050 { // 3.5 in at 300 dpi
		t.Errorf("PNG width %d px, want 1050 (3.5 in at 300 dpi)", w)
	}
	svg, err := os.ReadFile(base + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("inter-arrival time (s)")) {
		t.Errorf("SVG lacks the svg element or the axis label")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "partial") {
			t.Errorf("left-over temporary file %s", e.Name())
		}
	}
}

func TestBarsAndLinesDraw(t *testing.T) {
	dir := t.TempDir()
	if err := Bars(filepath.Join(dir, "proto"), "IP protocol mix", "share of packets",
		[]string{"TCP", "UDP", "ICMP"},
		Series{Name: "real", Y: []float64{0.6, 0.35, 0.05}},
		Series{Name: "synthetic", Y: []float64{0.5, 0.5, 0}}); err != nil {
		t.Fatal(err)
	}
	if err := Lines(filepath.Join(dir, "loss"), "Training loss", "step", "loss (nats/token)", true,
		Series{Name: "train", X: []float64{1, 2, 3}, Y: []float64{5, 3, 2}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"proto.png", "proto.svg", "loss.png", "loss.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestBarsWithMismatchedSeriesFails(t *testing.T) {
	err := Save(BarsFigure("x", "x", "share", []string{"a", "b"}, Series{Name: "s", Y: []float64{1}}), filepath.Join(t.TempDir(), "x"), Options{})
	if err == nil {
		t.Fatal("bar series with 1 value for 2 categories was accepted")
	}
}

func TestFiguresRoundTripThroughJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "figures.json")
	figs := []Figure{
		CDFFigure("wire_len_cdf", "Wire length", "bytes", false, map[string][]float64{"real": {1, 2, 3}}),
		BarsFigure("proto_mix", "Protocols", "share", []string{"TCP"}, Series{Name: "real", Y: []float64{1}}),
	}
	if err := WriteFigures(path, figs); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFigures(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Figure{figs[1], figs[0]} // sorted by name
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip changed figures:\n got %+v\nwant %+v", got, want)
	}
}

func TestTickLabelsUseSISuffixes(t *testing.T) {
	for v, want := range map[float64]string{1e6: "1M", 3e6: "3M", 5e6: "5M", 2.5e9: "2.5G", 1500: "1.5k", 500: "500", 0.25: "0.25", 0: "0"} {
		if got := tickLabel(v); got != want {
			t.Errorf("tickLabel(%g) = %q, want %q", v, got, want)
		}
	}
}
