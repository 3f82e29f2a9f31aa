package eval

import (
	"encoding/binary"
	"math/bits"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/stat"
)

// Privacy / memorisation: does the generator copy training packets?
//
//   - Exact copies: a packet's IP and transport headers, checksum fields
//     zeroed, are hashed (PacketFields.HdrHash); the share of synthetic
//     packets whose hash is in the set of training hashes is reported, beside
//     the same share for the real (held-out) packets as a baseline.
//   - Distance to closest record (DCR): the number of differing bytes
//     between a packet's first 64 header bytes (checksums zeroed, zero
//     padded) and the closest of up to maxDCRReferences training packets,
//     for up to maxDCRQueries synthetic and held-out real packets. A generator
//     that memorises has synthetic DCRs well below the held-out ones.

const (
	maxDCRReferences = 50_000
	maxDCRQueries    = 1_000
)

// DCRSummary describes distances to the closest training record, in bytes
// (out of hdrVecLen = 64).
type DCRSummary struct {
	Queries   int     `json:"queries"`
	Mean      float64 `json:"mean_bytes"`
	Median    float64 `json:"median_bytes"`
	P05       float64 `json:"p05_bytes"`
	ZeroShare float64 `json:"zero_share"`
}

// Privacy reports memorisation figures (present when training captures were given).
type Privacy struct {
	TrainPackets int `json:"train_packets"`
	// SynthVerbatim: share of synthetic IP packets whose headers occur
	// verbatim (checksums aside) in the training captures.
	SynthVerbatim Share `json:"synth_header_verbatim"`
	// RealVerbatim: the same for the real (held-out) packets: the rate at which
	// genuinely new traffic repeats a training header by chance.
	RealVerbatim Share `json:"real_header_verbatim"`
	// PerLabel: the two verbatim shares of each label's packets (against
	// all training packets, whatever their label).
	PerLabel       map[string]LabelVerbatim `json:"per_label"`
	DCRReferences  int                      `json:"dcr_references"`
	SynthDCR       DCRSummary               `json:"synth_dcr"`
	RealDCR        DCRSummary               `json:"real_dcr"`
	DCRMedianRatio *float64                 `json:"dcr_median_ratio_synth_to_real,omitempty"`
	// RealOverlapsTrain is true when a real capture is also a training capture
	// (then the real baseline is not held out).
	RealOverlapsTrain bool `json:"real_overlaps_train"`
}

// LabelVerbatim holds one label's verbatim-header shares.
type LabelVerbatim struct {
	SynthVerbatim Share `json:"synth_header_verbatim"`
	RealVerbatim  Share `json:"real_header_verbatim"`
}

// ipPackets returns pointers to every IP packet of the traces.
func ipPackets(traces []*Trace) []*PacketFields {
	var out []*PacketFields
	for _, t := range traces {
		for i := range t.Packets {
			if t.Packets[i].has(stIP) {
				out = append(out, &t.Packets[i])
			}
		}
	}
	return out
}

// traceLabels returns the sorted distinct labels of traces.
func traceLabels(traces []*Trace) []string {
	seen := map[string]bool{}
	for _, t := range traces {
		seen[t.Label] = true
	}
	return sortedKeys(seen)
}

// withLabel returns the traces of label l.
func withLabel(traces []*Trace, l string) []*Trace {
	var out []*Trace
	for _, t := range traces {
		if t.Label == l {
			out = append(out, t)
		}
	}
	return out
}

// evenly picks at most n elements of xs, evenly spaced (deterministic).
func evenly[T any](xs []T, n int) []T {
	if len(xs) <= n {
		return xs
	}
	out := make([]T, n)
	for i := range out {
		out[i] = xs[i*len(xs)/n]
	}
	return out
}

// hdrWords is a header vector as 8 machine words.
type hdrWords [hdrVecLen / 8]uint64

func wordsOf(p *PacketFields) hdrWords {
	var w hdrWords
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(p.HdrVec[i*8:])
	}
	return w
}

// differingBytes counts the bytes in which a and b differ (SWAR: a byte of
// a^b is zero exactly when the high bit of the expression below is set).
func differingBytes(a, b *hdrWords) int {
	const lo7 = 0x7f7f7f7f7f7f7f7f
	same := 0
	for i := range a {
		x := a[i] ^ b[i]
		y := ^((x&lo7 + lo7) | x | lo7)
		same += bits.OnesCount64(y)
	}
	return hdrVecLen - same
}

// closestDistances returns, for each query, the byte distance to the closest reference.
func closestDistances(queries, refs []hdrWords) []float64 {
	out := make([]float64, len(queries))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for qi := w; qi < len(queries); qi += workers {
				best := hdrVecLen
				q := &queries[qi]
				for ri := range refs {
					if d := differingBytes(q, &refs[ri]); d < best {
						best = d
						if d == 0 {
							break
						}
					}
				}
				out[qi] = float64(best)
			}
		}()
	}
	wg.Wait()
	return out
}

func summariseDCR(d []float64) DCRSummary {
	s := DCRSummary{Queries: len(d)}
	if len(d) == 0 {
		return s
	}
	slices.Sort(d)
	s.Mean = stat.Mean(d, nil)
	s.Median = stat.Quantile(0.5, stat.Empirical, d, nil)
	s.P05 = stat.Quantile(0.05, stat.Empirical, d, nil)
	zero := 0
	for _, v := range d {
		if v == 0 {
			zero++
		}
	}
	s.ZeroShare = float64(zero) / float64(len(d))
	return s
}

// privacy computes memorisation figures of synth (and the real baseline)
// against the training traces.
func privacy(train, real, synth []*Trace) *Privacy {
	tr := ipPackets(train)
	seen := make(map[uint64]struct{}, len(tr))
	for _, p := range tr {
		seen[p.HdrHash] = struct{}{}
	}
	verbatim := func(ps []*PacketFields) Share {
		var hits int64
		for _, p := range ps {
			if _, ok := seen[p.HdrHash]; ok {
				hits++
			}
		}
		return newShare(hits, int64(len(ps)))
	}
	rp, sp := ipPackets(real), ipPackets(synth)
	pr := &Privacy{TrainPackets: len(tr), SynthVerbatim: verbatim(sp), RealVerbatim: verbatim(rp), PerLabel: map[string]LabelVerbatim{}}
	for _, l := range traceLabels(synth) {
		pr.PerLabel[l] = LabelVerbatim{SynthVerbatim: verbatim(ipPackets(withLabel(synth, l))), RealVerbatim: verbatim(ipPackets(withLabel(real, l)))}
	}
	trainPaths := map[string]bool{}
	for _, t := range train {
		trainPaths[t.Path] = true
	}
	for _, t := range real {
		if trainPaths[t.Path] {
			pr.RealOverlapsTrain = true
		}
	}
	refs := evenly(tr, maxDCRReferences)
	rw := make([]hdrWords, len(refs))
	for i, p := range refs {
		rw[i] = wordsOf(p)
	}
	pr.DCRReferences = len(rw)
	queryWords := func(ps []*PacketFields) []hdrWords {
		ps = evenly(ps, maxDCRQueries)
		out := make([]hdrWords, len(ps))
		for i, p := range ps {
			out[i] = wordsOf(p)
		}
		return out
	}
	pr.SynthDCR = summariseDCR(closestDistances(queryWords(sp), rw))
	pr.RealDCR = summariseDCR(closestDistances(queryWords(rp), rw))
	if pr.RealDCR.Median > 0 && pr.SynthDCR.Queries > 0 {
		r := pr.SynthDCR.Median / pr.RealDCR.Median
		pr.DCRMedianRatio = &r
	}
	return pr
}
