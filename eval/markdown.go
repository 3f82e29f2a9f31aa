package eval

import (
	"fmt"
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
