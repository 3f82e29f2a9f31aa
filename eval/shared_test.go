package eval

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// sharedDataDir returns ../shared/data/pcaps relative to the repository root
// (the directory holding go.mod), or "" when it is absent.
func sharedDataDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
	data := filepath.Join(dir, "..", "shared", "data", "pcaps")
	if _, err := os.Stat(data); err != nil {
		return ""
	}
	return data
}

// sharedData is sharedDataDir, skipping the test when the data is absent.
func sharedData(t testing.TB) string {
	t.Helper()
	d := sharedDataDir(t)
	if d == "" {
		t.Skip("../shared/data absent; data-driven test skipped")
	}
	return d
}

// sharedHalves loads the shared captures and splits each label's files, in
// sorted order, alternately into halves a and b.
func sharedHalves(t testing.TB) (a, b []*Trace) {
	paths, err := ExpandCaptures([]string{sharedData(t)})
	if err != nil {
		t.Fatal(err)
	}
	traces := loadAll(t, paths)
	seen := map[string]int{}
	for _, tr := range traces { // paths are sorted, so each label's files are in order
		if seen[tr.Label]%2 == 0 {
			a = append(a, tr)
		} else {
			b = append(b, tr)
		}
		seen[tr.Label]++
	}
	return a, b
}

// TestSharedHalvesOfALabelAreCloserThanOtherLabels checks that the
// fidelity metrics tell workloads apart on real traffic: the two halves of a
// label (its files split alternately) are closer to each other than either
// is to another label's half. Real workloads overlap (a messaging app's
// video record is a video call), so the property is asked of most labels,
// not all: for each mean measure at most maxLabelExceptions labels may
// have another label closer, and each metric on its own must separate at
// least minMetricSeparation of the labels. Exceptions are logged.
func TestSharedHalvesOfALabelAreCloserThanOtherLabels(t *testing.T) {
	a, b := sharedHalves(t)
	aa, ba := analyzeAll(a), analyzeAll(b)
	labels := labelsOf(aa)
	if len(labels) < 3 {
		t.Skip("fewer than three labels in the shared data")
	}
	only := func(l string) func(string) bool { return func(x string) bool { return x == l } }
	pa, pb := map[string]*sideSummary{}, map[string]*sideSummary{}
	for _, l := range labels {
		x, y := pool(aa, only(l)), pool(ba, only(l))
		pa[l], pb[l] = &x, &y
	}
	dist := map[[2]string]GroupFidelity{}
	for _, la := range labels {
		for _, lb := range labels {
			dist[[2]string{la, lb}] = compareGroups(pa[la], pb[lb])
		}
	}
	// closerOther returns the other label pairings that come closer than
	// the halves of l, by measure get.
	closerOther := func(l string, get func(GroupFidelity) float64) []string {
		same := get(dist[[2]string{l, l}])
		var out []string
		for _, o := range labels {
			if o == l {
				continue
			}
			if d := get(dist[[2]string{l, o}]); !(same < d) {
				out = append(out, fmt.Sprintf("%s (first half) vs %s at %.4f", l, o, d))
			}
			if d := get(dist[[2]string{o, l}]); !(same < d) {
				out = append(out, fmt.Sprintf("%s vs %s (second half) at %.4f", o, l, d))
			}
		}
		return out
	}
	maxLabelExceptions := max(1, len(labels)/4)
	measures := []struct {
		name string
		get  func(GroupFidelity) float64
	}{
		{"mean JSD", func(g GroupFidelity) float64 { return g.MeanJSD }},
		{"mean TV", func(g GroupFidelity) float64 { return g.MeanTV }},
		{"mean Hellinger", func(g GroupFidelity) float64 { return g.MeanHellinger }},
	}
	for _, m := range measures {
		var rows []string
		for _, la := range labels {
			row := fmt.Sprintf("%-16s", la)
			for _, lb := range labels {
				row += fmt.Sprintf(" %8.4f", m.get(dist[[2]string{la, lb}]))
			}
			rows = append(rows, row)
		}
		t.Logf("%s, rows: first half's label, columns: second half's label %v\n%s", m.name, labels, strings.Join(rows, "\n"))
		failed := 0
		for _, l := range labels {
			if c := closerOther(l, m.get); len(c) > 0 {
				failed++
				t.Logf("exception, %s: halves of %s at %.4f, closer: %s", m.name, l, m.get(dist[[2]string{l, l}]), strings.Join(c, "; "))
			}
		}
		if failed > maxLabelExceptions {
			t.Errorf("%s: %d of %d labels have another label closer than their own halves; at most %d may", m.name, failed, len(labels), maxLabelExceptions)
		}
	}
	// Metric by metric, labels overlap far more (two UDP media workloads
	// share a protocol mix), so each metric is asked less: a label's halves
	// closer than the mean distance from it to the other labels, for at
	// least minMetricSeparation of the labels.
	const minMetricSeparation = 0.75
	for k := range numMetrics {
		key := metricDefs[k].key
		jsd := func(la, lb string) float64 { return dist[[2]string{la, lb}].Metrics[key].JSD }
		var separated int
		var missed []string
		for _, l := range labels {
			var other float64
			for _, o := range labels {
				if o != l {
					other += jsd(l, o) + jsd(o, l)
				}
			}
			other /= float64(2 * (len(labels) - 1))
			if jsd(l, l) < other {
				separated++
			} else {
				missed = append(missed, fmt.Sprintf("%s %.4f vs %.4f", l, jsd(l, l), other))
			}
		}
		t.Logf("%s JSD: halves closer than the other labels on average for %d of %d labels (not: %v)", key, separated, len(labels), missed)
		if float64(separated) < minMetricSeparation*float64(len(labels)) {
			t.Errorf("%s JSD separates only %d of %d labels; want at least %.0f %%", key, separated, len(labels), 100*minMetricSeparation)
		}
	}
}

// tsharkCounts runs tshark on a capture and counts what it reports: frames
// whose outermost IP layer carries TCP or UDP, and IPv4 header checksums by
// status (tshark: 0 Bad, 1 Good, 2 Unverified). Reassembly is off so that
// non-first fragments are not credited with their datagram's transport header.
func tsharkCounts(t *testing.T, path string) (transport, v4Checked, v4Good int64) {
	t.Helper()
	out, err := exec.Command("tshark", "-n", "-r", path, "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
		"-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "occurrence=f", "-e", "frame.protocols", "-e", "ip.checksum.status").Output()
	if err != nil {
		t.Fatalf("tshark on %s: %v", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		protos := strings.Split(f[0], ":")
		for i, p := range protos {
			if p != "ip" && p != "ipv6" {
				continue
			}
			j := i + 1
			for j < len(protos) && strings.HasPrefix(protos[j], "ipv6.") {
				j++
			}
			if j < len(protos) && (protos[j] == "tcp" || protos[j] == "udp") {
				transport++
			}
			break
		}
		if len(f) > 1 && protos[len(protos)-1] != "" {
			switch f[1] {
			case "0":
				v4Checked++
			case "1":
				v4Checked++
				v4Good++
			}
		}
	}
	return transport, v4Checked, v4Good
}

// TestParseAndChecksumFiguresAgreeWithTshark compares, file by file, the
// parse and IPv4-checksum counts with tshark's: on captures made here (a
// well-formed one and a broken one) always, and on the smallest two shared
// captures of each label when ../shared is present (all of them with
// NETSSM_EVAL_TSHARK_ALL=1).
func TestParseAndChecksumFiguresAgreeWithTshark(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not on PATH")
	}
	dir := t.TempDir()
	files := makeWorkloadCaptures(t, dir, []string{"bulk", "call"}, 1, 600, 40)
	bad := filepath.Join(dir, "broken", "broken.pcap")
	brokenCapture(t, bad)
	files = append(files, bad)
	if sharedDataDir(t) != "" {
		files = append(files, sharedSubset(t, os.Getenv("NETSSM_EVAL_TSHARK_ALL") == "1")...)
	}
	var sumOurs, sumTshark [3]int64
	for _, f := range files {
		tr, err := LoadTrace(f, "")
		if err != nil {
			t.Fatal(err)
		}
		c := analyzeTrace(tr).comp
		ours := [3]int64{c.IPTransport, c.IPv4, c.IPv4ChecksumOK}
		tt, tc, tg := tsharkCounts(t, f)
		theirs := [3]int64{tt, tc, tg}
		for i, name := range []string{"IP+TCP/UDP frames", "IPv4 checksums checked", "IPv4 checksums valid"} {
			sumOurs[i] += ours[i]
			sumTshark[i] += theirs[i]
			if ours[i] != theirs[i] {
				t.Errorf("%s: %s netssm %d, tshark %d", filepath.Base(f), name, ours[i], theirs[i])
			}
		}
	}
	t.Logf("%d files: IP+TCP/UDP frames netssm %d tshark %d; IPv4 checksums checked %d/%d, valid %d/%d",
		len(files), sumOurs[0], sumTshark[0], sumOurs[1], sumTshark[1], sumOurs[2], sumTshark[2])
}

// sharedSubset lists the two smallest shared captures of each label (or all).
func sharedSubset(t *testing.T, all bool) []string {
	paths, err := ExpandCaptures([]string{sharedData(t)})
	if err != nil {
		t.Fatal(err)
	}
	if all {
		return paths
	}
	byLabel := map[string][]string{}
	size := map[string]int64{}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		size[p] = st.Size()
		l := filepath.Base(filepath.Dir(p))
		byLabel[l] = append(byLabel[l], p)
	}
	var out []string
	for _, ps := range byLabel {
		sort.Slice(ps, func(i, j int) bool { return size[ps[i]] < size[ps[j]] })
		out = append(out, ps[:min(2, len(ps))]...)
	}
	sort.Strings(out)
	return out
}

// TestEachSharedCapturePassesAgainstTheRestOfItsLabel checks that the
// compliance checks are calibrated on real traffic: each real capture,
// judged as a synthetic side would be against the rest of its label (fixed
// bounds, and relative checks against the rest's rates), passes. It logs
// the captures that come closest to a bound.
func TestEachSharedCapturePassesAgainstTheRestOfItsLabel(t *testing.T) {
	paths, err := ExpandCaptures([]string{sharedData(t)})
	if err != nil {
		t.Fatal(err)
	}
	traces := loadAll(t, paths)
	as := analyzeAll(traces)
	for _, r := range judgeEachAgainstRestOfLabel(traces, as) {
		if !r.c.Pass {
			t.Errorf("%s (%s) fails compliance against the rest of its label: %v", filepath.Base(r.path), r.label, r.c.Failed())
		}
	}
	type slack struct {
		by   float64
		what string
	}
	var tight []slack
	for _, r := range judgeEachAgainstRestOfLabel(traces, as) {
		for _, ch := range r.c.Checks {
			if ch.Min == nil || ch.Share.Total < minJudged || !(ch.Share.Value < 1) {
				continue
			}
			ref := "fixed"
			if ch.Reference != nil {
				ref = "rest of label " + ch.Reference.String()
			}
			tight = append(tight, slack{ch.Share.Value - *ch.Min, fmt.Sprintf("%s %s: %s, bound %.3f (%s)", filepath.Base(r.path), ch.Name, ch.Share, *ch.Min, ref)})
		}
	}
	sort.Slice(tight, func(i, j int) bool { return tight[i].by < tight[j].by })
	for _, s := range tight[:min(5, len(tight))] {
		t.Logf("closest to its bound, by %.3f: %s", s.by, s.what)
	}
}

type judgedCapture struct {
	path, label string
	c           Compliance
}

// judgeEachAgainstRestOfLabel judges each trace against the pooled counts
// of the other traces of its label (labels of one trace are skipped).
func judgeEachAgainstRestOfLabel(traces []*Trace, as []traceAnalysis) []judgedCapture {
	var out []judgedCapture
	for i, tr := range traces {
		var rest complianceCounts
		others := 0
		for j := range traces {
			if j != i && as[j].label == as[i].label {
				rest.add(as[j].comp)
				others++
			}
		}
		if others == 0 {
			continue
		}
		out = append(out, judgedCapture{tr.Path, tr.Label, judgeAgainst(as[i].comp, rest)})
	}
	return out
}

func TestSharedRealVersusItselfHasZeroDivergence(t *testing.T) {
	a, b := sharedHalves(t)
	all := append(a, b...)
	r, _ := Evaluate(all, all, nil, Options{SkipUtility: true})
	for _, g := range append([]GroupFidelity{r.Fidelity.Pooled}, mapValues(r.Fidelity.PerLabel)...) {
		if g.MeanJSD != 0 || g.MeanTV != 0 || g.MeanHellinger != 0 {
			t.Errorf("real vs itself: mean JSD %g TV %g H %g", g.MeanJSD, g.MeanTV, g.MeanHellinger)
		}
		for k, d := range g.Metrics {
			if d.Wasserstein1 != nil && *d.Wasserstein1 != 0 {
				t.Errorf("real vs itself: %s W1 %g", k, *d.Wasserstein1)
			}
		}
	}
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
