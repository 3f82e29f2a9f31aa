// Package testutil holds the numeric comparisons tests across netssm share.
// It is imported by tests only.
package testutil

import "math"

// MaxRelErr is max |a−b| / max(1, |b|) over the elements of a and b: the
// relative error of a against the reference b, absolute near zero. A length
// mismatch or a NaN on either side is infinite, so a comparison never
// passes by accident.
func MaxRelErr(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	worst := 0.0
	for i := range a {
		d := math.Abs(a[i]-b[i]) / max(1, math.Abs(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		worst = max(worst, d)
	}
	return worst
}
