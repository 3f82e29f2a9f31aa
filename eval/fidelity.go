package eval

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/stat"
)

// metricDef says how one metric is named, binned and labelled.
type metricDef struct {
	key   string // stable key in metrics.json
	title string
	unit  string // of the raw values, for axis labels
	level string // "packet" or "flow"
	bin   func(v float64) int64
	name  func(b int64) string // human name of a bin (bars, tables)
	// w1 is how Wasserstein-1 is computed: "" none, "linear" on the raw
	// values, "log10" on log10 of values floored at w1Floor.
	w1      string
	w1Floor float64
	w1Unit  string
}

var metricDefs = [numMetrics]metricDef{
	mWireLen: {key: "wire_len", title: "Packet wire length", unit: "bytes", level: "packet",
		bin: binWireLen, name: nameWireLen, w1: "linear", w1Unit: "bytes"},
	mIPProto: {key: "ip_proto", title: "IP protocol", unit: "protocol number", level: "packet",
		bin: binExact, name: nameProto},
	mTTL: {key: "ttl", title: "TTL / hop limit", unit: "hops", level: "packet",
		bin: binExact, name: nameExact},
	mTCPFlags: {key: "tcp_flags", title: "TCP flags", unit: "flag set", level: "packet",
		bin: binExact, name: nameTCPFlags},
	mTCPWindow: {key: "tcp_window", title: "TCP window (unscaled)", unit: "bytes", level: "packet",
		bin: binHalfOctave, name: nameHalfOctave},
	mPort: {key: "port", title: "Transport ports (source and destination)", unit: "port", level: "packet",
		bin: binPort, name: namePort},
	mInterArrival: {key: "inter_arrival", title: "Packet inter-arrival time", unit: "s", level: "packet",
		bin: binLogTime, name: nameLogTime, w1: "log10", w1Floor: 1e-7, w1Unit: "log10 s"},
	mFlowsPerTrace: {key: "flows_per_trace", title: "Flows per trace", unit: "flows", level: "flow",
		bin: binOctave, name: nameOctave},
	mFlowPackets: {key: "flow_packets", title: "Packets per flow", unit: "packets", level: "flow",
		bin: binOctave, name: nameOctave},
	mFlowBytes: {key: "flow_bytes", title: "Bytes per flow", unit: "bytes", level: "flow",
		bin: binOctave, name: nameOctave},
	mFlowDuration: {key: "flow_duration", title: "Flow duration", unit: "s", level: "flow",
		bin: binLogTime, name: nameLogTime},
	mConcurrentFlows: {key: "concurrent_flows", title: "Concurrent flows (seen by each packet)", unit: "flows", level: "flow",
		bin: binOctave, name: nameOctave},
}

// Binning. Every bin function maps a value to an integer bin id; the
// divergences compare the bin frequencies.

func binExact(v float64) int64 { return int64(v) }

func nameExact(b int64) string { return fmt.Sprint(b) }

// binWireLen: 16-byte bins up to 1520 bytes (the Ethernet MTU region), then
// one bin per octave for offloaded and jumbo packets.
func binWireLen(v float64) int64 {
	n := int64(v)
	if n < 1520 {
		return n / 16
	}
	return 95 + int64(bits.Len64(uint64(n)>>11))
}

func nameWireLen(b int64) string {
	if b < 95 {
		return fmt.Sprintf("%d–%d", b*16, b*16+15)
	}
	if b == 95 {
		return "1520–2047"
	}
	lo := int64(1024) << (b - 95)
	return fmt.Sprintf("%d–%d", lo, 2*lo-1)
}

var protoNames = map[int64]string{1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 41: "IPv6-in-IP", 47: "GRE", 50: "ESP", 58: "ICMPv6", 132: "SCTP"}

func nameProto(b int64) string {
	if n, ok := protoNames[b]; ok {
		return n
	}
	return fmt.Sprintf("proto %d", b)
}

func nameTCPFlags(b int64) string {
	names := []string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}
	var parts []string
	for i, n := range names {
		if b&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// binHalfOctave: 0 alone, then two bins per power of two.
func binHalfOctave(v float64) int64 {
	if v < 1 {
		return 0
	}
	return 1 + int64(math.Floor(2*math.Log2(v)))
}

func nameHalfOctave(b int64) string {
	if b == 0 {
		return "0"
	}
	lo := math.Exp2(float64(b-1) / 2)
	hi := math.Exp2(float64(b) / 2)
	return fmt.Sprintf("%.0f–%.0f", math.Ceil(lo), math.Ceil(hi)-1)
}

// binOctave: one bin per power of two (0, 1, 2–3, 4–7, …).
func binOctave(v float64) int64 {
	if v < 1 {
		return 0
	}
	return int64(bits.Len64(uint64(v)))
}

func nameOctave(b int64) string {
	switch b {
	case 0:
		return "0"
	case 1:
		return "1"
	}
	lo := uint64(1) << (b - 1)
	return fmt.Sprintf("%d–%d", lo, 2*lo-1)
}

// notablePorts are registered (≥ 1024) ports kept exact rather than bucketed,
// because the workloads here use them for signalling and discovery.
var notablePorts = map[int64]string{
	1900: "1900 SSDP", 3478: "3478 STUN/TURN", 3479: "3479 STUN", 3480: "3480 STUN", 3481: "3481 STUN",
	5222: "5222 XMPP", 5228: "5228 GCM", 5353: "5353 mDNS", 5355: "5355 LLMNR", 8080: "8080 HTTP-alt",
	8443: "8443 HTTPS-alt", 19302: "19302 STUN", 19305: "19305 STUN",
}

var wellKnownPorts = map[int64]string{
	53: "53 DNS", 67: "67 DHCP", 68: "68 DHCP", 80: "80 HTTP", 123: "123 NTP", 137: "137 NetBIOS",
	138: "138 NetBIOS", 443: "443 HTTPS/QUIC", 853: "853 DoT",
}

// binPort: well-known ports (< 1024) and notable registered ports exact,
// other ports in buckets of 1024.
func binPort(v float64) int64 {
	p := int64(v)
	if p < 1024 {
		return p
	}
	if _, ok := notablePorts[p]; ok {
		return p
	}
	return 1<<20 + p>>10
}

func namePort(b int64) string {
	if b < 1<<20 {
		if n, ok := wellKnownPorts[b]; ok {
			return n
		}
		if n, ok := notablePorts[b]; ok {
			return n
		}
		return fmt.Sprint(b)
	}
	lo := (b - 1<<20) << 10
	return fmt.Sprintf("%d–%d", lo, lo+1023)
}

// binLogTime: ≤ 1 µs, then four bins per decade up to ≥ 100 s.
func binLogTime(v float64) int64 {
	if v <= 1e-6 {
		return 0
	}
	b := 1 + int64(math.Floor((math.Log10(v)+6)*4))
	return min(b, 33)
}

func nameLogTime(b int64) string {
	if b == 0 {
		return "≤1µs"
	}
	if b == 33 {
		return "≥100s"
	}
	return fmt.Sprintf("%.3g–%.3gs", math.Pow(10, float64(b-1)/4-6), math.Pow(10, float64(b)/4-6))
}

// Divergence compares one metric's distribution on the real and synthetic
// sides. JSD is in bits (base-2 logarithm, range 0–1); TV and Hellinger are
// in 0–1; all three are over the metric's bins.
type Divergence struct {
	JSD          float64  `json:"jsd"`
	TV           float64  `json:"tv"`
	Hellinger    float64  `json:"hellinger"`
	Wasserstein1 *float64 `json:"wasserstein1,omitempty"`
	W1Unit       string   `json:"wasserstein1_unit,omitempty"`
	NReal        int      `json:"n_real"`
	NSynth       int      `json:"n_synth"`
}

// Histogram counts values per bin of a metric.
func histogram(m metric, vals []float64) map[int64]float64 {
	h := make(map[int64]float64)
	bin := metricDefs[m].bin
	for _, v := range vals {
		h[bin(v)]++
	}
	return h
}

// alignedDistributions turns two histograms into probability vectors over
// the union of their bins (in ascending bin order).
func alignedDistributions(hp, hq map[int64]float64) (p, q []float64, binsOut []int64) {
	for b := range hp {
		binsOut = append(binsOut, b)
	}
	for b := range hq {
		if _, ok := hp[b]; !ok {
			binsOut = append(binsOut, b)
		}
	}
	slices.Sort(binsOut)
	p, q = make([]float64, len(binsOut)), make([]float64, len(binsOut))
	for i, b := range binsOut {
		p[i], q[i] = hp[b], hq[b]
	}
	if s := floats.Sum(p); s > 0 {
		floats.Scale(1/s, p)
	}
	if s := floats.Sum(q); s > 0 {
		floats.Scale(1/s, q)
	}
	return p, q, binsOut
}

// divergence compares real and synthetic values of metric m; ok is false
// when either side has none.
func divergence(m metric, real, synth *sideSummary) (Divergence, bool) {
	nr, ns := len(real.values[m]), len(synth.values[m])
	if nr == 0 || ns == 0 {
		return Divergence{}, false
	}
	p, q, _ := alignedDistributions(real.histogram(m), synth.histogram(m))
	d := Divergence{NReal: nr, NSynth: ns}
	if !floats.Equal(p, q) { // identical distributions stay exactly zero
		d.JSD = stat.JensenShannon(p, q) / math.Ln2
		d.TV = floats.Distance(p, q, 1) / 2
		d.Hellinger = stat.Hellinger(p, q)
		if math.IsNaN(d.Hellinger) { // 1 − BC rounded below 0
			d.Hellinger = 0
		}
	}
	if def := metricDefs[m]; def.w1 != "" {
		w := wasserstein1Sorted(real.w1Sample(m), synth.w1Sample(m))
		d.Wasserstein1, d.W1Unit = &w, def.w1Unit
	}
	return d, true
}

// histogram returns (and caches) the bin counts of metric m.
func (s *sideSummary) histogram(m metric) map[int64]float64 {
	if s.hists[m] == nil {
		s.hists[m] = histogram(m, s.values[m])
	}
	return s.hists[m]
}

// w1Sample returns (and caches) the values of metric m on the scale its
// Wasserstein-1 distance uses, sorted.
func (s *sideSummary) w1Sample(m metric) []float64 {
	if s.w1[m] != nil {
		return s.w1[m]
	}
	def := metricDefs[m]
	y := make([]float64, len(s.values[m]))
	for i, v := range s.values[m] {
		if def.w1 == "log10" {
			v = math.Log10(max(v, def.w1Floor))
		}
		y[i] = v
	}
	slices.Sort(y)
	s.w1[m] = y
	return y
}

// wasserstein1Sorted is the 1-D earth mover's distance between two
// equally weighted samples, given sorted: the integral of |F_a − F_b| over the
// merged support, in one linear pass. (gonum/stat.WassersteinDistance gives
// the same figure — a test checks it — but rescans both CDFs at every support
// point, which is quadratic and far too slow for 10⁵ packets.)
func wasserstein1Sorted(a, b []float64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return math.NaN()
	}
	na, nb := float64(len(a)), float64(len(b))
	i, j := 0, 0
	var dist float64
	x := math.Min(a[0], b[0])
	for i < len(a) || j < len(b) {
		// Advance past every sample equal to the current point x.
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		next := math.Inf(1)
		if i < len(a) {
			next = a[i]
		}
		if j < len(b) {
			next = math.Min(next, b[j])
		}
		if math.IsInf(next, 1) {
			break
		}
		dist += math.Abs(float64(i)/na-float64(j)/nb) * (next - x)
		x = next
	}
	return dist
}

// GroupFidelity holds the divergences of every metric for one group of
// traces (one label, or all pooled), plus their means over metrics.
type GroupFidelity struct {
	Metrics       map[string]Divergence `json:"metrics"`
	MeanJSD       float64               `json:"mean_jsd"`
	MeanTV        float64               `json:"mean_tv"`
	MeanHellinger float64               `json:"mean_hellinger"`
	// Missing lists metrics not compared because a side had no values.
	Missing []string `json:"missing,omitempty"`
}

func compareGroups(real, synth *sideSummary) GroupFidelity {
	g := GroupFidelity{Metrics: map[string]Divergence{}}
	n := 0
	for m := range numMetrics {
		d, ok := divergence(m, real, synth)
		if !ok {
			g.Missing = append(g.Missing, metricDefs[m].key)
			continue
		}
		g.Metrics[metricDefs[m].key] = d
		g.MeanJSD += d.JSD
		g.MeanTV += d.TV
		g.MeanHellinger += d.Hellinger
		n++
	}
	if n > 0 {
		g.MeanJSD /= float64(n)
		g.MeanTV /= float64(n)
		g.MeanHellinger /= float64(n)
	}
	return g
}
