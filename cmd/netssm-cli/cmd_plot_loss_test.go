package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLossPlotLabelsMillionsAndMarksTheFinalValidation: the x axis reads
// 1M, 2M…, not 1e+06, and the final validation on every held-out token is a
// labelled marker of its own, not the last point of the validation curve.
func TestLossPlotLabelsMillionsAndMarksTheFinalValidation(t *testing.T) {
	dir := t.TempDir()
	var rows strings.Builder
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&rows, `{"step":%d,"tokens":%d,"loss":%g,"val_loss":%g,"val_unigram_loss":3,"lr":0.001,"grad_norm":1,"tokens_per_s":1,"elapsed_s":1}`+"\n", i, i*1_000_000, 3-0.3*float64(i), 3-0.2*float64(i))
	}
	rows.WriteString(`{"step":5,"tokens":5000000,"loss":1.5,"val_loss":2.4,"val_unigram_loss":3.1,"val_full":true,"lr":0,"grad_norm":0,"tokens_per_s":0,"elapsed_s":2}` + "\n")
	if err := os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(rows.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := plotLoss(dir); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "loss.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{">1M<", ">3M<", ">5M<", "final validation, every held-out token", "its unigram baseline"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("loss.svg lacks %q", want)
		}
	}
	if strings.Contains(string(svg), "e+06") {
		t.Error("loss.svg still writes e+06")
	}
}
