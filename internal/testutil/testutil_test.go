package testutil

import (
	"math"
	"testing"
)

func TestMaxRelErrIsRelativeAwayFromZeroAndAbsoluteNearIt(t *testing.T) {
	if got := MaxRelErr([]float64{110, 0.5}, []float64{100, 0.25}); math.Abs(got-0.25) > 1e-12 {
		t.Fatalf("MaxRelErr = %v, want 0.25 (|0.5−0.25|/1 beats |110−100|/100)", got)
	}
}

func TestMaxRelErrNeverPassesOnNaNOrLengthMismatch(t *testing.T) {
	for _, c := range []struct {
		name string
		a, b []float64
	}{
		{"NaN in a", []float64{math.NaN()}, []float64{1}},
		{"NaN in b", []float64{1}, []float64{math.NaN()}},
		{"a shorter", []float64{1}, []float64{1, 2}},
		{"a longer", []float64{1, 2}, []float64{1}},
	} {
		if got := MaxRelErr(c.a, c.b); !math.IsInf(got, 1) {
			t.Errorf("%s: MaxRelErr = %v, want +Inf", c.name, got)
		}
	}
}
