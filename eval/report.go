package eval

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/netssm/netssm/internal/atomicfile"
	"github.com/netssm/netssm/plots"
)

// SchemaVersion names the layout of metrics.json; it changes when a key does.
const SchemaVersion = "netssm-eval/2"

// LabelInputs counts one label's inputs.
type LabelInputs struct {
	Files     int   `json:"files"`
	IPPackets int64 `json:"ip_packets"`
}

// SideInputs describes the captures of one side.
type SideInputs struct {
	Files     []string               `json:"files"`
	Records   int64                  `json:"records"`
	IPPackets int64                  `json:"ip_packets"`
	Labels    map[string]LabelInputs `json:"labels"`
}

func describeInputs(traces []*Trace) SideInputs {
	s := SideInputs{Labels: map[string]LabelInputs{}}
	for _, t := range traces {
		s.Files = append(s.Files, t.Path)
		ip := int64(t.IPPackets())
		s.Records += int64(len(t.Packets))
		s.IPPackets += ip
		l := s.Labels[t.Label]
		l.Files++
		l.IPPackets += ip
		s.Labels[t.Label] = l
	}
	return s
}

// Inputs describes what was compared.
type Inputs struct {
	Real  SideInputs  `json:"real"`
	Synth SideInputs  `json:"synth"`
	Train *SideInputs `json:"train,omitempty"`
}

// Fidelity holds the divergences, pooled over all traces and per label
// (labels present on both sides).
type Fidelity struct {
	Pooled   GroupFidelity            `json:"pooled"`
	PerLabel map[string]GroupFidelity `json:"per_label"`
	// Labels seen on one side only (not compared per label).
	OnlyReal  []string `json:"only_real,omitempty"`
	OnlySynth []string `json:"only_synth,omitempty"`
}

// ComplianceBySide holds the compliance of each side: pooled over all
// traces (the synthetic side judged against the pooled real side), and per
// label present on both sides (each synthetic label judged against the same
// real label). Pass verdicts of the pooled sides decide.
type ComplianceBySide struct {
	Real     Compliance                 `json:"real"`
	Synth    Compliance                 `json:"synth"`
	PerLabel map[string]LabelCompliance `json:"per_label,omitempty"`
}

// LabelCompliance is one label's compliance on both sides.
type LabelCompliance struct {
	Real  Compliance `json:"real"`
	Synth Compliance `json:"synth"`
}

// FigureRef names a figure of the report and its files (relative to the report dir).
type FigureRef struct {
	Name    string `json:"name"`
	Title   string `json:"title"`
	Caption string `json:"caption"`
	PNG     string `json:"png"`
	SVG     string `json:"svg"`
}

// Report is everything eval measures; it is written as metrics.json.
type Report struct {
	Schema     string           `json:"schema"`
	Inputs     Inputs           `json:"inputs"`
	Fidelity   Fidelity         `json:"fidelity"`
	Compliance ComplianceBySide `json:"compliance"`
	// FlowStructure: flows, addresses and packets per flow over the first
	// packets of each trace, pooled and per label.
	FlowStructure *FlowStructureReport `json:"flow_structure"`
	// LabelConfusion: every synthetic label against every real label.
	LabelConfusion *LabelConfusion `json:"label_confusion"`
	Utility        *Utility        `json:"utility,omitempty"`
	Privacy        *Privacy        `json:"privacy,omitempty"`
	// Malformed: tshark's malformed frames (absent when tshark was not run).
	Malformed *Malformed  `json:"malformed,omitempty"`
	Figures   []FigureRef `json:"figures"`
	// ElapsedS is the evaluation's wall time in seconds (with reading the
	// captures when made by Run; drawing the figures not included).
	ElapsedS float64 `json:"elapsed_s"`
}

// Options tune an evaluation.
type Options struct {
	// WindowPackets is the classifier's window length in IP packets (default 200).
	WindowPackets int
	// SkipUtility leaves out the classifier (it needs ≥ 2 labels).
	SkipUtility bool
	// FlowWindow is the number of IP packets at the start of each trace
	// the flow-structure figures count (default DefaultFlowWindow).
	FlowWindow int
	// Tshark is the path of tshark, run by Run over every capture to count
	// malformed frames; empty: not run.
	Tshark string
}

// analyzeAll runs analyzeTrace over traces, in parallel.
func analyzeAll(traces []*Trace) []traceAnalysis {
	out := make([]traceAnalysis, len(traces))
	parallel(len(traces), func(i int) { out[i] = analyzeTrace(traces[i]) })
	return out
}

// parallel runs fn(0) … fn(n−1), up to GOMAXPROCS at once, and waits for
// them.
func parallel(n int, fn func(i int)) {
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// Evaluate compares synthetic traces with real ones (and, when train is not
// empty, measures memorisation of the training traces). It returns the report
// and the figures that go with it: those listed in Report.Figures are drawn
// into the report, the others (per-label CDFs, named NAME__LABEL) are kept as
// data for `netssm-cli plot`. Nothing is written.
func Evaluate(real, synth, train []*Trace, opts Options) (*Report, []plots.Figure) {
	start := time.Now()
	if opts.WindowPackets <= 0 {
		opts.WindowPackets = 200
	}
	if opts.FlowWindow <= 0 {
		opts.FlowWindow = DefaultFlowWindow
	}
	r := &Report{Schema: SchemaVersion}
	r.Inputs.Real, r.Inputs.Synth = describeInputs(real), describeInputs(synth)
	if len(train) > 0 {
		ti := describeInputs(train)
		r.Inputs.Train = &ti
	}
	ra, sa := analyzeAll(real), analyzeAll(synth)
	rp, sp := pool(ra, nil), pool(sa, nil)
	r.Fidelity.Pooled = compareGroups(&rp, &sp)
	r.Fidelity.PerLabel = map[string]GroupFidelity{}
	var labelFigs []plots.Figure // per-label CDFs: data for `netssm-cli plot`, not drawn
	rl, sl := labelsOf(ra), labelsOf(sa)
	realByLabel, synthByLabel := poolByLabel(ra, rl), poolByLabel(sa, sl)
	var both []string
	for _, l := range rl {
		if !slices.Contains(sl, l) {
			r.Fidelity.OnlyReal = append(r.Fidelity.OnlyReal, l)
			continue
		}
		both = append(both, l)
		rg, sg := realByLabel[l], synthByLabel[l]
		r.Fidelity.PerLabel[l] = compareGroups(rg, sg)
		labelFigs = append(labelFigs, labelCDFs(l, rg, sg)...)
	}
	for _, l := range sl {
		if !slices.Contains(rl, l) {
			r.Fidelity.OnlySynth = append(r.Fidelity.OnlySynth, l)
		}
	}
	r.Compliance.Real, r.Compliance.Synth = judgeReference(rp.comp), judgeAgainst(sp.comp, rp.comp)
	r.Compliance.PerLabel = map[string]LabelCompliance{}
	for _, l := range both {
		rc, sc := realByLabel[l].comp, synthByLabel[l].comp
		r.Compliance.PerLabel[l] = LabelCompliance{Real: judgeReference(rc), Synth: judgeAgainst(sc, rc)}
	}
	r.FlowStructure = flowStructureReport(real, synth, opts.FlowWindow, both)
	r.LabelConfusion = labelConfusion(realByLabel, synthByLabel)
	if !opts.SkipUtility {
		r.Utility = utility(real, synth, opts.WindowPackets)
	}
	if len(train) > 0 {
		r.Privacy = privacy(train, real, synth)
	}
	figs := figures(&rp, &sp, real, synth)
	for _, f := range figs {
		r.Figures = append(r.Figures, FigureRef{Name: f.Name, Title: f.Title, Caption: f.Caption,
			PNG: "plots/" + f.Name + ".png", SVG: "plots/" + f.Name + ".svg"})
	}
	r.ElapsedS = time.Since(start).Seconds()
	return r, append(figs, labelFigs...)
}

// poolByLabel pools the analyses of each label.
func poolByLabel(as []traceAnalysis, labels []string) map[string]*sideSummary {
	out := make(map[string]*sideSummary, len(labels))
	for _, l := range labels {
		g := pool(as, func(x string) bool { return x == l })
		out[l] = &g
	}
	return out
}

// labelCDFs are the CDF figures of one label, named NAME__LABEL.
func labelCDFs(label string, rp, sp *sideSummary) []plots.Figure {
	var out []plots.Figure
	for _, c := range cdfSpecs {
		if len(rp.values[c.m]) == 0 && len(sp.values[c.m]) == 0 {
			continue
		}
		f := plots.CDFFigure(c.name+"__"+label, metricDefs[c.m].title+" ("+label+")", c.xLabel, c.logX,
			map[string][]float64{"real": rp.values[c.m], "synthetic": sp.values[c.m]}, "real", "synthetic")
		f.Caption = c.caption + " Label " + label + " only."
		out = append(out, f)
	}
	return out
}

// cdfSpecs are the CDF figures of a report (pooled, and per label as data
// for `netssm-cli plot`).
var cdfSpecs = []struct {
	m       metric
	name    string
	xLabel  string
	logX    bool
	caption string
}{
	{mWireLen, "wire_len_cdf", "IP packet length (bytes)", false,
		"CDF of IP packet length (from the IP header) over all IP packets. Curves that coincide mean the generator reproduces the size mix: ACK-sized packets near 40–80 B, full-size segments near the MTU."},
	{mInterArrival, "inter_arrival_cdf", "inter-arrival time (s, log scale)", true,
		"CDF of the time between successive IP packets of a trace (log scale; zero gaps drawn at the left edge). Shows whether bursts and pauses are reproduced."},
	{mFlowPackets, "flow_packets_cdf", "packets per flow (log scale)", true,
		"CDF of flow size in packets, flows being bidirectional 5-tuples within one trace."},
	{mFlowBytes, "flow_bytes_cdf", "bytes per flow (log scale)", true,
		"CDF of flow size in bytes (sum of IP lengths)."},
	{mFlowDuration, "flow_duration_cdf", "flow duration (s, log scale)", true,
		"CDF of flow duration, first to last packet (single-packet flows have duration 0, drawn at the left edge)."},
}

// figures builds the report's figures from the pooled values.
func figures(rp, sp *sideSummary, real, synth []*Trace) []plots.Figure {
	const realName, synthName = "real", "synthetic"
	cdf := func(m metric, name, xLabel string, logX bool, caption string) plots.Figure {
		f := plots.CDFFigure(name, metricDefs[m].title, xLabel, logX,
			map[string][]float64{realName: rp.values[m], synthName: sp.values[m]}, realName, synthName)
		f.Caption = caption
		return f
	}
	var figs []plots.Figure
	for _, c := range cdfSpecs {
		if len(rp.values[c.m]) > 0 || len(sp.values[c.m]) > 0 {
			f := cdf(c.m, c.name, c.xLabel, c.logX, c.caption)
			if c.m == mWireLen && shareAtMost(rp.values[c.m], 1600) >= 0.995 && shareAtMost(sp.values[c.m], 1600) >= 0.995 {
				// A few offloaded (TSO/GRO) packets of tens of kB would squash the MTU range.
				hi := 1600.0
				f.XMax = &hi
				f.Caption += " The axis stops at 1600 B; the few larger (offloaded) packets are off the chart but in the figures' data and the divergences."
			}
			figs = append(figs, f)
		}
	}
	figs = append(figs, mixBars(mIPProto, "ip_proto_mix", "IP protocol mix", 8, rp, sp,
		"Share of IP packets by transport protocol, real against synthetic."))
	figs = append(figs, mixBars(mPort, "port_mix", "Service port mix (top 12)", 12, rp, sp,
		"Shares among service-port occurrences (source and destination counted): well-known ports (< 1024) and the registered ports these workloads use (STUN, mDNS, SSDP, …); ephemeral and other unregistered ports are left out here (the divergence table bins them in buckets of 1024)."))
	if f, ok := packetsOverTime(real, synth); ok {
		figs = append(figs, f)
	}
	return figs
}

// mixBars compares the share of the most common bins of metric m.
func mixBars(m metric, name, title string, top int, rp, sp *sideSummary, caption string) plots.Figure {
	hr, hs := histogram(m, rp.values[m]), histogram(m, sp.values[m])
	if m == mPort {
		// Ephemeral and other unregistered ports say little on a bar chart
		// and would dwarf the service ports: leave them out.
		hr, hs = servicePorts(hr), servicePorts(hs)
	}
	p, q, bins := alignedDistributions(hr, hs)
	idx := make([]int, len(bins))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]]+q[idx[a]] > p[idx[b]]+q[idx[b]] })
	var cats []string
	var ry, sy []float64
	restR, restS := 1.0, 1.0
	for _, i := range idx[:min(top, len(idx))] {
		cats = append(cats, metricDefs[m].name(bins[i]))
		ry, sy = append(ry, p[i]), append(sy, q[i])
		restR -= p[i]
		restS -= q[i]
	}
	if len(idx) > top {
		cats = append(cats, "other")
		ry, sy = append(ry, max(restR, 0)), append(sy, max(restS, 0))
	}
	if len(cats) == 0 {
		cats, ry, sy = []string{"none"}, []float64{0}, []float64{0}
	}
	f := plots.BarsFigure(name, title, "share of packets", cats,
		plots.Series{Name: "real", Y: ry}, plots.Series{Name: "synthetic", Y: sy})
	if m == mPort {
		f.XLabel = "share of service-port occurrences"
	}
	f.Caption = caption
	return f
}

// servicePorts keeps the exact (well-known and notable) port bins.
func servicePorts(h map[int64]float64) map[int64]float64 {
	out := make(map[int64]float64, len(h))
	for b, n := range h {
		if b < 1<<20 {
			out[b] = n
		}
	}
	return out
}

// packetsOverTime draws the packet rate of the largest trace of each side.
func packetsOverTime(real, synth []*Trace) (plots.Figure, bool) {
	largest := func(ts []*Trace) *Trace {
		var best *Trace
		bestN := 0
		for _, t := range ts {
			if n := t.IPPackets(); n > bestN {
				best, bestN = t, n
			}
		}
		return best
	}
	tr, ts := largest(real), largest(synth)
	span := func(t *Trace) (int64, int64) {
		if t == nil {
			return 0, 0
		}
		first, last := int64(math.MaxInt64), int64(math.MinInt64)
		for i := range t.Packets {
			if t.Packets[i].has(stIP) {
				first, last = min(first, t.Packets[i].TimeNS), max(last, t.Packets[i].TimeNS)
			}
		}
		return first, last
	}
	r0, r1 := span(tr)
	s0, s1 := span(ts)
	dur := max(float64(r1-r0), float64(s1-s0)) / 1e9
	if tr == nil && ts == nil {
		return plots.Figure{}, false
	}
	bin := niceBin(dur / 100)
	series := func(name string, t *Trace, t0 int64) plots.Series {
		s := plots.Series{Name: name}
		if t == nil {
			return s
		}
		counts := map[int]float64{}
		maxB := 0
		for i := range t.Packets {
			if t.Packets[i].has(stIP) {
				b := int(float64(t.Packets[i].TimeNS-t0) / 1e9 / bin)
				counts[b]++
				maxB = max(maxB, b)
			}
		}
		for b := 0; b <= maxB; b++ {
			s.X = append(s.X, float64(b)*bin)
			s.Y = append(s.Y, counts[b]/bin)
		}
		return s
	}
	var ss []plots.Series
	var names []string
	if tr != nil {
		ss = append(ss, series("real", tr, r0))
		names = append(names, "real: "+filepath.Base(tr.Path))
	}
	if ts != nil {
		ss = append(ss, series("synthetic", ts, s0))
		names = append(names, "synthetic: "+filepath.Base(ts.Path))
	}
	f := plots.LinesFigure("packets_over_time", "Packets over time (largest trace per side)",
		"time since trace start (s)", "packets per second", false, ss...)
	f.Caption = fmt.Sprintf("Packet rate in %.3g s bins of one trace per side, the one with most IP packets (%s). Shows whether the generator reproduces the rhythm of a session: steady rate, bursts, idle periods.", bin, joinNames(names))
	return f, true
}

func shareAtMost(x []float64, v float64) float64 {
	if len(x) == 0 {
		return 1
	}
	n := 0
	for _, e := range x {
		if e <= v {
			n++
		}
	}
	return float64(n) / float64(len(x))
}

func joinNames(n []string) string {
	s := ""
	for i, x := range n {
		if i > 0 {
			s += "; "
		}
		s += x
	}
	return s
}

// niceBin rounds x up to 1, 2 or 5 times a power of ten (at least 1 ms).
func niceBin(x float64) float64 {
	if !(x > 1e-3) {
		return 1e-3
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// Config is a whole evaluation run: which captures, and where the report goes.
type Config struct {
	Real, Synth, Train []string // capture files (see capture.FindFiles)
	Labels             Labeler
	OutDir             string
	Options            Options
	Plot               plots.Options
}

// Run reads the captures, evaluates, and writes the report directory. A
// side failing protocol compliance is not an error: the report says so
// (Report.Compliance), and the caller decides how loud to be.
func Run(cfg Config) (r *Report, err error) {
	defer func() {
		// A bug must not crash the caller: it becomes an error naming the report.
		if x := recover(); x != nil {
			r, err = nil, fmt.Errorf("evaluating into %s: internal error: %v", cfg.OutDir, x)
		}
	}()
	start := time.Now()
	real, err := LoadTraces(cfg.Real, cfg.Labels, "real captures")
	if err != nil {
		return nil, err
	}
	synth, err := LoadTraces(cfg.Synth, cfg.Labels, "synthetic captures")
	if err != nil {
		return nil, err
	}
	var train []*Trace
	if len(cfg.Train) > 0 {
		if train, err = LoadTraces(cfg.Train, cfg.Labels, "training captures"); err != nil {
			return nil, err
		}
	}
	r, figs := Evaluate(real, synth, train, cfg.Options)
	if cfg.Options.Tshark != "" {
		if r.Malformed, err = malformed(cfg.Options.Tshark, real, synth); err != nil {
			return nil, fmt.Errorf("evaluating into %s: %w", cfg.OutDir, err)
		}
	}
	r.ElapsedS = time.Since(start).Seconds() // reading the captures included
	if err := WriteReport(cfg.OutDir, r, figs, cfg.Plot); err != nil {
		return nil, err
	}
	slog.Debug("evaluation written", "dir", cfg.OutDir, "seconds", r.ElapsedS,
		"real_compliance", r.Compliance.Real.Pass, "synth_compliance", r.Compliance.Synth.Pass)
	return r, nil
}

// WriteReport writes report.md, metrics.json and plots/ under dir, each file
// atomically.
func WriteReport(dir string, r *Report, figs []plots.Figure, po plots.Options) error {
	plotDir := filepath.Join(dir, "plots")
	if err := os.MkdirAll(plotDir, 0o755); err != nil {
		return fmt.Errorf("creating report directory: %w", err)
	}
	drawn := map[string]bool{}
	for _, f := range r.Figures {
		drawn[f.Name] = true
	}
	for _, f := range figs {
		if !drawn[f.Name] {
			continue
		}
		if err := plots.Save(f, filepath.Join(plotDir, f.Name), po); err != nil {
			return fmt.Errorf("report %s: %w", dir, err)
		}
	}
	if err := plots.WriteFigures(filepath.Join(plotDir, "figures.json"), figs); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding metrics for %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "metrics.json"), append(data, '\n')); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "report.md"), []byte(Markdown(r)))
}

// ReadReport loads a metrics.json written by WriteReport.
func ReadReport(dir string) (*Report, error) {
	data, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		return nil, fmt.Errorf("reading report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", filepath.Join(dir, "metrics.json"), err)
	}
	if r.Schema != SchemaVersion {
		return nil, fmt.Errorf("%s: schema %q, this netssm reads %q", filepath.Join(dir, "metrics.json"), r.Schema, SchemaVersion)
	}
	return &r, nil
}

// DivergenceFigure draws one bar per metric: the chosen measure ("jsd", "tv"
// or "hellinger") of a group's real-vs-synthetic comparison.
func DivergenceFigure(g GroupFidelity, measure, group string) plots.Figure {
	var cats []string
	var ys []float64
	for m := range numMetrics {
		d, ok := g.Metrics[metricDefs[m].key]
		if !ok {
			continue
		}
		v := d.JSD
		switch measure {
		case "tv":
			v = d.TV
		case "hellinger":
			v = d.Hellinger
		}
		cats, ys = append(cats, metricDefs[m].key), append(ys, v)
	}
	names := map[string]string{"jsd": "Jensen–Shannon divergence (bits)", "tv": "total variation", "hellinger": "Hellinger distance"}
	f := plots.BarsFigure("divergence_"+measure+"_"+group, "Real vs synthetic, "+group, names[measure], cats,
		plots.Series{Name: group, Y: ys})
	f.Caption = "Divergence of each metric's distribution between real and synthetic traffic (0 = identical)."
	return f
}
