package train

import (
	"math"
	"time"
)

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

// budget says when a run ends (a step, token or wall-clock budget) and what
// the learning rate is on the way there.
type budget struct {
	sched      Schedule
	totalSteps int64   // the step budget; 0 when only a time budget is given
	seconds    float64 // the time budget; 0 without one
	before     float64 // seconds spent before a resume
	started    time.Time
}

func newBudget(cfg RunConfig, elapsedBefore float64) *budget {
	total := cfg.totalSteps()
	return &budget{
		sched:      Schedule{Peak: cfg.LR, Warmup: cfg.Warmup, Total: total, MinRatio: cfg.MinLRRatio},
		totalSteps: total,
		seconds:    time.Duration(cfg.TimeBudget).Seconds(),
		before:     elapsedBefore,
		started:    time.Now(),
	}
}

// elapsed is the run's training time in seconds, across resumes.
func (b *budget) elapsed() float64 { return b.before + time.Since(b.started).Seconds() }

// spent says whether the run has reached its step or time budget.
func (b *budget) spent(step int64) bool {
	return (b.totalSteps > 0 && step >= b.totalSteps) || (b.seconds > 0 && b.elapsed() >= b.seconds)
}

// lr is the learning rate of the step after step. With only a time budget
// the cosine decay runs on the fraction of the time spent (after the
// warm-up, which counts steps).
func (b *budget) lr(step int64) float64 {
	if b.totalSteps > 0 || b.seconds == 0 || step < b.sched.Warmup {
		return b.sched.LR(step)
	}
	const resolution = 1_000_000
	byTime := b.sched
	byTime.Total = b.sched.Warmup + resolution
	return byTime.LR(b.sched.Warmup + int64(b.elapsed()/b.seconds*resolution))
}
