package export

import (
	"iter"
	"slices"
)

// TimingTables are the empirical inter-arrival tables a bundle carries for
// generation, its "timing" member (model.json):
//
//	{"inter_arrival_ns": {"LABEL": [q0, q1, …]},   // sorted quantiles of the gaps between packets
//	 "dt_bucket_ns": [[q0, q1, …], …]}              // per <dt:k> bucket: sorted quantiles of its gaps
//
// Both are optional. Per label, the gaps between consecutive packets (used
// when the model was trained without <dt:k> tokens: without them a model's
// packets are spaced by the label-independent default of 1 ms); per <dt:k>
// bucket, the gaps that fell in it (so a generated bucket turns into a
// realistic gap; without them a gap is log-uniform inside its bucket).
// Package infer reads them; TimingFrom builds them from a dataset.
type TimingTables struct {
	InterArrivalNs map[string][]int64 `json:"inter_arrival_ns,omitempty"`
	BucketNs       [][]int64          `json:"dt_bucket_ns,omitempty"`
}

// TimedTrace is what TimingFrom needs of a trace.
type TimedTrace struct {
	Label string
	TsNs  []int64 // per packet, from trace start
}

// TimingFrom builds timing tables from traces, keeping q quantiles per table.
// bucketOf maps a gap (ns) to its <dt:k> bucket (nil: no bucket tables).
func TimingFrom(traces iter.Seq2[TimedTrace, error], buckets int, bucketOf func(int64) int, q int) (TimingTables, error) {
	gaps := map[string][]int64{}
	perBucket := make([][]int64, buckets)
	for tr, err := range traces {
		if err != nil {
			return TimingTables{}, err
		}
		for i := 1; i < len(tr.TsNs); i++ {
			g := max(tr.TsNs[i]-tr.TsNs[i-1], 0)
			gaps[tr.Label] = append(gaps[tr.Label], g)
			if bucketOf != nil {
				if k := bucketOf(g); k >= 0 && k < buckets {
					perBucket[k] = append(perBucket[k], g)
				}
			}
		}
	}
	t := TimingTables{InterArrivalNs: map[string][]int64{}}
	for label, g := range gaps {
		t.InterArrivalNs[label] = quantiles(g, q)
	}
	if bucketOf != nil {
		t.BucketNs = make([][]int64, buckets)
		for k, g := range perBucket {
			t.BucketNs[k] = quantiles(g, q)
		}
	}
	return t, nil
}

// quantiles returns q+1 evenly spaced order statistics (min … max) of xs.
func quantiles(xs []int64, q int) []int64 {
	if len(xs) == 0 {
		return nil
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) <= q+1 {
		return s
	}
	out := make([]int64, q+1)
	for i := range out {
		out[i] = s[i*(len(s)-1)/q]
	}
	return out
}
