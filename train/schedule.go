package train

import "math"

// Schedule is the learning-rate schedule: linear warm-up from 0 to Peak over
// Warmup steps, then cosine decay to Peak·MinRatio at Total steps (and flat
// after, for time- or token-budgeted runs that overshoot their estimate).
type Schedule struct {
	Peak     float64
	Warmup   int64
	Total    int64
	MinRatio float64
}

// LR is the learning rate at step (0-based).
func (s Schedule) LR(step int64) float64 {
	if s.Warmup > 0 && step < s.Warmup {
		return s.Peak * float64(step+1) / float64(s.Warmup)
	}
	floor := s.Peak * s.MinRatio
	if s.Total <= s.Warmup || step >= s.Total {
		if s.Total <= s.Warmup {
			return s.Peak
		}
		return floor
	}
	progress := float64(step-s.Warmup) / float64(s.Total-s.Warmup)
	return floor + 0.5*(s.Peak-floor)*(1+math.Cos(math.Pi*progress))
}
