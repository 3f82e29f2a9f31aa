package infer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Timing turns a packet's generated timing token into its inter-arrival time
// (the gap since the previous packet of the trace). bucket is the `<dt:k>`
// index the model generated, or -1 when the packet has none (a model trained
// without timing). Every draw uses the trace's timing stream, so timestamps
// are as reproducible as the tokens.
type Timing interface {
	Gap(bucket int, rng *rand.Rand) time.Duration
}

// BucketTiming jitters a gap inside its `<dt:k>` bucket. Edges has one more
// entry than there are buckets: bucket k covers [Edges[k], Edges[k+1]). When
// Quantiles[k] is non-empty (the empirical gaps the bundle stored for that
// bucket, sorted), the gap is drawn from them by interpolation; otherwise it
// is log-uniform inside the bucket (uniform when the lower edge is 0).
type BucketTiming struct {
	Edges     []time.Duration
	Quantiles [][]time.Duration
	// Fallback draws the gap of a packet without a timing token (nil: 0).
	Fallback Timing
}

// LogBuckets returns n log-spaced bucket edges: bucket 0 is [0, lo], the
// last is [hi, 2·hi), the ones between split (lo, hi) evenly in log time.
// netssm's token format v1 uses LogBuckets(64, time.Microsecond, 60*time.Second).
func LogBuckets(n int, lo, hi time.Duration) []time.Duration {
	e := make([]time.Duration, n+1)
	e[1] = lo
	ratio := math.Log(float64(hi)/float64(lo)) / float64(n-2)
	for k := 2; k < n; k++ {
		e[k] = time.Duration(float64(lo) * math.Exp(ratio*float64(k-1)))
	}
	e[n-1] = hi
	e[n] = 2 * hi
	return e
}

// Gap implements Timing.
func (b BucketTiming) Gap(bucket int, rng *rand.Rand) time.Duration {
	u := rng.Float64()
	if bucket < 0 || bucket >= len(b.Edges)-1 {
		if b.Fallback != nil {
			return b.Fallback.Gap(-1, rng)
		}
		return 0
	}
	if bucket < len(b.Quantiles) && len(b.Quantiles[bucket]) > 0 {
		return quantile(b.Quantiles[bucket], u)
	}
	lo, hi := float64(b.Edges[bucket]), float64(b.Edges[bucket+1])
	if lo <= 0 {
		return time.Duration(u * hi)
	}
	return time.Duration(lo * math.Exp(u*math.Log(hi/lo)))
}

// EmpiricalTiming draws every gap from a label's empirical inter-arrival
// distribution (sorted quantiles, as a bundle stores them), ignoring timing
// tokens: NetSSM's post-hoc timestamps for models trained without timing.
type EmpiricalTiming struct {
	Quantiles []time.Duration
}

// Gap implements Timing.
func (e EmpiricalTiming) Gap(_ int, rng *rand.Rand) time.Duration {
	u := rng.Float64()
	if len(e.Quantiles) == 0 {
		return 0
	}
	return quantile(e.Quantiles, u)
}

// quantile interpolates sorted q at u ∈ [0, 1).
func quantile(q []time.Duration, u float64) time.Duration {
	if len(q) == 1 {
		return q[0]
	}
	x := u * float64(len(q)-1)
	i := int(x)
	if i >= len(q)-1 {
		return q[len(q)-1]
	}
	f := x - float64(i)
	return q[i] + time.Duration(f*float64(q[i+1]-q[i]))
}

// validateEdges checks that edges are increasing.
func validateEdges(edges []time.Duration) error {
	for k := 1; k < len(edges); k++ {
		if edges[k] <= edges[k-1] {
			return fmt.Errorf("timing bucket edges not increasing at %d: %v ≤ %v", k, edges[k], edges[k-1])
		}
	}
	return nil
}
