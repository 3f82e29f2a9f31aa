package eval

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Markdown renders the report as report.md: inputs, compliance verdicts,
// fidelity tables, utility, privacy, then every figure with what it shows.
func Markdown(r *Report) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# netssm evaluation report\n\n")
	w("Synthetic traffic compared with real traffic. Every figure below is also in `metrics.json` (schema `%s`); the data behind each plot is in `plots/figures.json` (redraw one with `netssm-cli plot`).\n\n", r.Schema)

	w("## Inputs\n\n| side | files | records | IP packets | labels |\n|---|---:|---:|---:|---|\n")
	side := func(name string, s SideInputs) {
		var ls []string
		for l, c := range s.Labels {
			ls = append(ls, fmt.Sprintf("%s (%d files, %d pkts)", l, c.Files, c.IPPackets))
		}
		sort.Strings(ls)
		w("| %s | %d | %d | %d | %s |\n", name, len(s.Files), s.Records, s.IPPackets, strings.Join(ls, ", "))
	}
	side("real", r.Inputs.Real)
	side("synthetic", r.Inputs.Synth)
	if r.Inputs.Train != nil {
		side("training", *r.Inputs.Train)
	}

	summaryTable(&b, r)
	flowStructureTable(&b, r)
	confusionTable(&b, r.LabelConfusion)

	w("\n## Protocol compliance\n\n")
	verdict := func(c Compliance) string {
		if c.Pass {
			return "PASS"
		}
		return "**FAIL** (" + strings.Join(c.Failed(), ", ") + ")"
	}
	w("Real: %s. Synthetic: %s.\n\n", verdict(r.Compliance.Real), verdict(r.Compliance.Synth))
	w("Fixed checks hold a bound every real stack meets, on both sides. Relative checks are rates real traffic misses too (retransmissions, capture loss, flows seen mid-way): the real side is their reference, and the synthetic side passes when its miss rate is at most %g× the real one plus %g points (bound = 1 − (%g·(1 − real) + %g)). Shares with fewer than %d observations are not judged.\n\n",
		RelativeMissFactor, 100*RelativeMissSlack, RelativeMissFactor, RelativeMissSlack, minJudged)
	complianceTable(&b, r.Compliance.Real, r.Compliance.Synth)
	w("\nAlso: IP header parse share real %s, synthetic %s; IP and TCP/UDP headers (what tshark dissects as ip:tcp or ip:udp) real %s, synthetic %s; IPv4 header checksum valid (strict, zero fields counted as bad) real %s, synthetic %s; TCP flows opening with a SYN real %s, synthetic %s; TCP flows whose sequence numbers never fall behind real %s, synthetic %s.\n",
		r.Compliance.Real.IPParse, r.Compliance.Synth.IPParse, r.Compliance.Real.IPTCPUDPParse, r.Compliance.Synth.IPTCPUDPParse,
		r.Compliance.Real.IPv4ChecksumValid, r.Compliance.Synth.IPv4ChecksumValid,
		r.Compliance.Real.TCPFlowsOpeningWithSYN, r.Compliance.Synth.TCPFlowsOpeningWithSYN,
		r.Compliance.Real.FlowsSeqMonotone, r.Compliance.Synth.FlowsSeqMonotone)
	if len(r.Compliance.PerLabel) > 0 {
		w("\nPer label (each synthetic label judged against the same real label):\n\n| label | real | synthetic |\n|---|---|---|\n")
		for _, l := range sortedKeys(r.Compliance.PerLabel) {
			c := r.Compliance.PerLabel[l]
			w("| %s | %s | %s |\n", l, verdict(c.Real), verdict(c.Synth))
		}
	}

	w("\n## Statistical fidelity (pooled over labels)\n\n")
	w("JSD: Jensen–Shannon divergence in bits (0 = identical, 1 = disjoint); TV: total variation; H: Hellinger distance; all over the bins of each metric. W1: Wasserstein-1 (earth mover's) distance on the raw values. Lower is closer.\n\n")
	fidelityTable(&b, r.Fidelity.Pooled)
	if len(r.Fidelity.PerLabel) > 0 {
		w("\n### Per label\n\n| label | mean JSD | mean TV | mean H |")
		for m := range numMetrics {
			w(" %s JSD |", metricDefs[m].key)
		}
		w("\n|---|---:|---:|---:|")
		for range numMetrics {
			w("---:|")
		}
		w("\n")
		var labels []string
		for l := range r.Fidelity.PerLabel {
			labels = append(labels, l)
		}
		sort.Strings(labels)
		for _, l := range labels {
			g := r.Fidelity.PerLabel[l]
			w("| %s | %.4f | %.4f | %.4f |", l, g.MeanJSD, g.MeanTV, g.MeanHellinger)
			for m := range numMetrics {
				if d, ok := g.Metrics[metricDefs[m].key]; ok {
					w(" %.4f |", d.JSD)
				} else {
					w(" – |")
				}
			}
			w("\n")
		}
	}
	if len(r.Fidelity.OnlyReal) > 0 || len(r.Fidelity.OnlySynth) > 0 {
		w("\nLabels on one side only (not compared per label): real %v, synthetic %v.\n", r.Fidelity.OnlyReal, r.Fidelity.OnlySynth)
	}

	if u := r.Utility; u != nil {
		w("\n## Downstream utility\n\n")
		w("A workload classifier (%s) labels windows of %d IP packets from %d features (%s). TRTR trains on half of each label's real files and tests on the other half; TSTR trains on the synthetic traffic and tests on the same real half. TSTR close to TRTR means the synthetic traffic carries the information that tells workloads apart.\n\n",
			u.Model, u.WindowPackets, len(u.Features), strings.Join(u.Features, ", "))
		w("| setting | accuracy | macro-F1 | train windows | test windows |\n|---|---:|---:|---:|---:|\n")
		for _, s := range []struct {
			name string
			c    *ClassifierScore
		}{{"TRTR (real → real)", u.TRTR}, {"TSTR (synthetic → real)", u.TSTR}} {
			if s.c == nil {
				w("| %s | – | – | – | – |\n", s.name)
				continue
			}
			w("| %s | %.3f | %.3f | %d | %d |\n", s.name, s.c.Accuracy, s.c.MacroF1, s.c.TrainWindows, s.c.TestWindows)
		}
		if u.TSTRToTRTRAccuracy != nil {
			w("\nTSTR/TRTR accuracy ratio: %.3f.\n", *u.TSTRToTRTRAccuracy)
		}
		if u.Note != "" {
			w("\nNote: %s\n", u.Note)
		}
	}

	if p := r.Privacy; p != nil {
		w("\n## Privacy and memorisation\n\n")
		w("Headers are the IP and transport headers with checksum fields zeroed. Verbatim: share of packets whose headers occur exactly in the %d training packets. DCR: bytes (of the first 64 header bytes) that differ from the closest of %d training packets, for up to %d packets per side. Synthetic figures far below the held-out real ones point to memorisation.\n\n",
			p.TrainPackets, p.DCRReferences, maxDCRQueries)
		w("| side | verbatim headers | DCR median | DCR mean | DCR p05 | DCR = 0 |\n|---|---|---:|---:|---:|---:|\n")
		w("| synthetic | %s | %.1f | %.2f | %.1f | %.3f |\n", p.SynthVerbatim, p.SynthDCR.Median, p.SynthDCR.Mean, p.SynthDCR.P05, p.SynthDCR.ZeroShare)
		w("| real (held out) | %s | %.1f | %.2f | %.1f | %.3f |\n", p.RealVerbatim, p.RealDCR.Median, p.RealDCR.Mean, p.RealDCR.P05, p.RealDCR.ZeroShare)
		if p.RealOverlapsTrain {
			w("\nWarning: some real captures are also training captures, so the real baseline is not held out.\n")
		}
	}

	if len(r.Figures) > 0 {
		w("\n## Figures\n\n")
		if len(r.Fidelity.PerLabel) > 0 {
			var labels []string
			for l := range r.Fidelity.PerLabel {
				labels = append(labels, l)
			}
			sort.Strings(labels)
			w("Pooled over labels. The same CDFs for each label (%s) are kept as data: draw one with `netssm-cli plot figure REPORT_DIR wire_len_cdf__%s` (list them with `netssm-cli plot list REPORT_DIR`).\n\n",
				strings.Join(labels, ", "), labels[0])
		}
		for _, f := range r.Figures {
			w("### %s\n\n![%s](%s)\n\n%s ([SVG](%s))\n\n", f.Title, f.Name, f.PNG, f.Caption, f.SVG)
		}
	}
	w("\nEvaluated in %.1f s.\n", r.ElapsedS)
	return b.String()
}

// complianceTable writes one row per check: its kind, the real share, the
// synthetic share, the bound the synthetic side was held to and its verdict.
func complianceTable(b *strings.Builder, real, synth Compliance) {
	fmt.Fprintf(b, "| check | kind | real | synthetic | synthetic bound | synthetic verdict |\n|---|---|---|---|---|---|\n")
	for i, ch := range real.Checks {
		sc := Check{}
		if i < len(synth.Checks) {
			sc = synth.Checks[i]
		}
		verdict := "pass"
		switch {
		case sc.Name == "":
			verdict = "–"
		case !sc.Pass:
			verdict = "**FAIL**"
		case sc.Note != "":
			verdict = "pass (" + sc.Note + ")"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", ch.Name, ch.Kind, mark(ch), shareText(sc), boundText(sc), verdict)
	}
}

func shareText(c Check) string {
	if c.Name == "" {
		return "–"
	}
	return c.Share.String()
}

// boundText is a check's bound: "≥ 0.95", with where it came from for a
// relative check.
func boundText(c Check) string {
	s := "–"
	switch {
	case c.Min != nil:
		s = fmt.Sprintf("≥ %.3f", *c.Min)
	case c.Max != nil:
		s = fmt.Sprintf("≤ %.3f", *c.Max)
	}
	if c.Kind == CheckRelative && c.Reference != nil && c.Reference.Total >= minJudged {
		s += " (from real)"
	}
	return s
}

func mark(c Check) string {
	if c.Name == "" {
		return "–"
	}
	s := c.Share.String()
	if c.Note != "" && c.Share.Total > 0 && (c.Kind != CheckRelative || c.Reference != nil) {
		s += " (" + c.Note + ")"
	}
	if !c.Pass {
		s = "**FAIL** " + s
	}
	return s
}

func fidelityTable(b *strings.Builder, g GroupFidelity) {
	fmt.Fprintf(b, "| metric | level | JSD | TV | H | W1 | n real | n synthetic |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for m := range numMetrics {
		def := metricDefs[m]
		d, ok := g.Metrics[def.key]
		if !ok {
			fmt.Fprintf(b, "| %s | %s | – | – | – | – | – | – |\n", def.key, def.level)
			continue
		}
		w1 := "–"
		if d.Wasserstein1 != nil {
			w1 = fmt.Sprintf("%.4g %s", *d.Wasserstein1, d.W1Unit)
		}
		fmt.Fprintf(b, "| %s | %s | %.4f | %.4f | %.4f | %s | %d | %d |\n", def.key, def.level, d.JSD, d.TV, d.Hellinger, w1, d.NReal, d.NSynth)
	}
	fmt.Fprintf(b, "| **mean** | | %.4f | %.4f | %.4f | | | |\n", g.MeanJSD, g.MeanTV, g.MeanHellinger)
}

// pct formats a share as a percentage ("–" when undefined).
func pct(s Share) string {
	if s.Total == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f %%", 100*s.Value)
}

// summaryTable writes the headline figures per label and pooled: what a
// results table comparing generators needs.
func summaryTable(b *strings.Builder, r *Report) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("\n## Summary\n\n")
	w("Per label and pooled: mean JSD over the fidelity metrics (lower is closer), the real label closest to the synthetic traffic (label confusion), the workload classifier's F1 on real test windows when trained on synthetic (TSTR) and on real (TRTR) traffic, synthetic headers found verbatim in the training captures, TCP flows whose sequence numbers never fall behind, TCP segments with a valid flag set, frames tshark marks malformed, and the synthetic side's compliance verdict. Pairs are real / synthetic.\n\n")
	w("| label | mean JSD | closest real label | TSTR F1 / TRTR F1 | verbatim headers | TCP seq monotone flows | TCP flag sets valid | malformed (tshark) | compliance |\n|---|---:|---|---|---|---|---|---|---|\n")
	closest := map[string]string{}
	if r.LabelConfusion != nil {
		for _, row := range r.LabelConfusion.Rows {
			closest[row.SynthLabel] = row.ClosestReal
		}
	}
	for _, l := range sortedKeys(r.Fidelity.PerLabel) {
		g := r.Fidelity.PerLabel[l]
		c := r.Compliance.PerLabel[l]
		w("| %s | %.4f | %s | %s | %s | %s / %s | %s / %s | %s | %s |\n", l, g.MeanJSD, closest[l], f1Pair(r.Utility, l),
			verbatimOf(r.Privacy, l), pct(c.Real.FlowsSeqMonotone), pct(c.Synth.FlowsSeqMonotone),
			pct(c.Real.TCPFlagsValid), pct(c.Synth.TCPFlagsValid), malformedOf(r.Malformed, l), passWord(c.Synth))
	}
	own := "–"
	if lc := r.LabelConfusion; lc != nil && lc.Compared > 0 {
		own = fmt.Sprintf("own label for %d of %d", lc.OwnClosest, lc.Compared)
	}
	ratio := "–"
	if u := r.Utility; u != nil && u.TSTRToTRTRAccuracy != nil {
		ratio = fmt.Sprintf("accuracy ratio %.3f", *u.TSTRToTRTRAccuracy)
	}
	w("| **pooled** | %.4f | %s | %s | %s | %s / %s | %s / %s | %s | %s |\n", r.Fidelity.Pooled.MeanJSD, own, ratio, verbatimOf(r.Privacy, ""),
		pct(r.Compliance.Real.FlowsSeqMonotone), pct(r.Compliance.Synth.FlowsSeqMonotone),
		pct(r.Compliance.Real.TCPFlagsValid), pct(r.Compliance.Synth.TCPFlagsValid), malformedOf(r.Malformed, ""), passWord(r.Compliance.Synth))
	if r.Malformed == nil {
		w("\ntshark was not run (not found, or --no-tshark): malformed frames not counted.\n")
		return
	}
	w("\nMalformed frames by the last protocol tshark dissected: real %s; synthetic %s.\n",
		layerCounts(r.Malformed.Real.Layers), layerCounts(r.Malformed.Synth.Layers))
}

// layerCounts lists malformed frames per protocol, most first ("none" when
// there are none).
func layerCounts(layers map[string]int64) string {
	if len(layers) == 0 {
		return "none"
	}
	names := slices.Collect(maps.Keys(layers))
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(layers[b], layers[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, layers[n])
	}
	return strings.Join(parts, ", ")
}

func passWord(c Compliance) string {
	if c.Checks == nil {
		return "–"
	}
	if c.Pass {
		return "pass"
	}
	return "**FAIL**"
}

// f1Pair is a label's TSTR and TRTR F1 ("" label: nothing).
func f1Pair(u *Utility, l string) string {
	if u == nil || u.TSTR == nil || u.TRTR == nil {
		return "–"
	}
	return fmt.Sprintf("%.3f / %.3f", u.TSTR.PerLabelF1[l], u.TRTR.PerLabelF1[l])
}

// verbatimOf is a label's (or, for "", the pooled) synthetic verbatim share
// with the held-out real one in parentheses.
func verbatimOf(p *Privacy, l string) string {
	if p == nil {
		return "–"
	}
	if l == "" {
		return fmt.Sprintf("%s (real %s)", pct(p.SynthVerbatim), pct(p.RealVerbatim))
	}
	v, ok := p.PerLabel[l]
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%s (real %s)", pct(v.SynthVerbatim), pct(v.RealVerbatim))
}

// malformedOf is a label's (or the pooled) malformed frames, real / synthetic.
func malformedOf(m *Malformed, l string) string {
	if m == nil {
		return "–"
	}
	if l == "" {
		return fmt.Sprintf("%d / %d", m.Real.Frames.Hits, m.Synth.Frames.Hits)
	}
	return fmt.Sprintf("%d / %d", m.Real.PerLabel[l].Hits, m.Synth.PerLabel[l].Hits)
}

// flowStructureTable writes the flow-structure figures per label and pooled.
func flowStructureTable(b *strings.Builder, r *Report) {
	fs := r.FlowStructure
	if fs == nil {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("\n## Flow structure\n\n")
	w("Counted over the first %d IP packets of each trace (all of a shorter trace's packets), flows being bidirectional 5-tuples. Flows and distinct IP addresses: mean per trace; TCP packets per TCP flow and single-packet flows: all traces' windows pooled. A generator that does not hold flows together shows many more flows and addresses, short TCP flows and many single-packet flows. Pairs are real / synthetic.\n\n", fs.WindowPackets)
	w("| label | traces | flows per %d packets | IP addresses per %d packets | TCP packets per TCP flow | single-packet flows |\n|---|---|---|---|---|---|\n", fs.WindowPackets, fs.WindowPackets)
	row := func(name string, g FlowStructureBySide) {
		w("| %s | %d / %d | %.1f / %.1f | %.1f / %.1f | %s / %s | %s / %s |\n", name, g.Real.Traces, g.Synth.Traces,
			g.Real.FlowsPerWindow, g.Synth.FlowsPerWindow, g.Real.AddressesPerWindow, g.Synth.AddressesPerWindow,
			ratioText(g.Real.TCPPacketsPerTCPFlow), ratioText(g.Synth.TCPPacketsPerTCPFlow), pct(g.Real.SinglePacketFlows), pct(g.Synth.SinglePacketFlows))
	}
	for _, l := range sortedKeys(fs.PerLabel) {
		row(l, fs.PerLabel[l])
	}
	row("**pooled**", fs.Pooled)
}

func ratioText(v *float64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf("%.1f", *v)
}

// confusionTable writes the label-confusion matrix.
func confusionTable(b *strings.Builder, lc *LabelConfusion) {
	if lc == nil || len(lc.Rows) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("\n## Label confusion\n\n")
	w("Mean JSD of each synthetic label's traffic (rows) against each real label's (columns); the row's smallest is in bold. A generator that follows its label is closest to its own real label: here for %d of %d labels.\n\n| synthetic \\ real |", lc.OwnClosest, lc.Compared)
	for _, l := range lc.RealLabels {
		w(" %s |", l)
	}
	w(" closest |\n|---|")
	for range lc.RealLabels {
		w("---:|")
	}
	w("---|\n")
	for _, row := range lc.Rows {
		w("| %s |", row.SynthLabel)
		for _, l := range lc.RealLabels {
			v := fmt.Sprintf("%.4f", row.MeanJSD[l])
			if l == row.ClosestReal {
				v = "**" + v + "**"
			}
			w(" %s |", v)
		}
		mark := ""
		if _, ok := row.MeanJSD[row.SynthLabel]; ok && !row.OwnIsClosest {
			mark = " (not its own)"
		}
		w(" %s%s |\n", row.ClosestReal, mark)
	}
}
