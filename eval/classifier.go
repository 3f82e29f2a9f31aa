package eval

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"
	"gonum.org/v1/gonum/stat"
)

// Downstream utility: can a workload classifier trained on synthetic traffic
// recognise real traffic (TSTR), compared with one trained on real traffic
// (TRTR)? The classifier is multinomial logistic regression with an L2
// penalty, its weights fitted by gonum/optimize (L-BFGS) on standardised
// window features; only the softmax loss and its gradient are written here.

// windowFeatureNames name the features of one window of traffic, in order.
var windowFeatureNames = []string{
	"mean log2 wire length", "sd log2 wire length", "share ≤128 B", "share ≥1200 B",
	"mean log10 inter-arrival", "sd log10 inter-arrival", "log10 window duration",
	"share TCP", "share UDP", "share IPv6", "share other protocols",
	"distinct flows per packet", "log2 distinct flows", "share of largest flow",
	"share port 443", "share port 53 or 5353", "share TCP without payload",
}

// windowFeatures computes the features of the IP packets pk (in trace order).
func windowFeatures(pk []*PacketFields) []float64 {
	n := float64(len(pk))
	var ll, small, large, tcp, udp, v6, other, p443, pdns, bare float64
	logLen := make([]float64, len(pk))
	logDT := make([]float64, 0, len(pk))
	flows := map[flowKey]int{}
	for i, p := range pk {
		logLen[i] = math.Log2(max(float64(p.WireLen), 1))
		ll += logLen[i]
		if p.WireLen <= 128 {
			small++
		}
		if p.WireLen >= 1200 {
			large++
		}
		if i > 0 {
			dt := float64(p.TimeNS-pk[i-1].TimeNS) / 1e9
			logDT = append(logDT, math.Log10(max(dt, 1e-7)))
		}
		switch p.Proto {
		case protoTCP:
			tcp++
			if p.SegLen == 0 {
				bare++
			}
		case protoUDP:
			udp++
		default:
			other++
		}
		if p.Version == 6 {
			v6++
		}
		if p.SrcPort == 443 || p.DstPort == 443 {
			p443++
		}
		if p.SrcPort == 53 || p.DstPort == 53 || p.SrcPort == 5353 || p.DstPort == 5353 {
			pdns++
		}
		k, _ := keyOf(p)
		flows[k]++
	}
	largest := 0
	for _, c := range flows {
		largest = max(largest, c)
	}
	_, sdLen := stat.MeanStdDev(logLen, nil)
	mDT, sdDT := 0.0, 0.0
	if len(logDT) > 1 {
		mDT, sdDT = stat.MeanStdDev(logDT, nil)
	}
	dur := float64(pk[len(pk)-1].TimeNS-pk[0].TimeNS) / 1e9
	tcpShareBare := 0.0
	if tcp > 0 {
		tcpShareBare = bare / tcp
	}
	return []float64{
		ll / n, sdLen, small / n, large / n,
		mDT, sdDT, math.Log10(max(dur, 1e-6)),
		tcp / n, udp / n, v6 / n, other / n,
		float64(len(flows)) / n, math.Log2(float64(len(flows))), float64(largest) / n,
		p443 / n, pdns / n, tcpShareBare,
	}
}

// labelledWindows are feature rows with their labels and source traces.
type labelledWindows struct {
	x      [][]float64
	labels []string
	traces []int // index of the trace a window came from
}

// windowsOf cuts each trace's IP packets into windows of size packets (at
// most maxPerTrace windows per trace, evenly spread, so that long captures do
// not dominate); a trace shorter than one window gives one window when it has
// at least size/4 packets.
func windowsOf(traces []*Trace, size, maxPerTrace int) labelledWindows {
	var w labelledWindows
	for ti, t := range traces {
		var ip []*PacketFields
		for i := range t.Packets {
			if t.Packets[i].has(stIP) {
				ip = append(ip, &t.Packets[i])
			}
		}
		n := len(ip) / size
		if n == 0 {
			if len(ip) >= max(size/4, 2) {
				w.x = append(w.x, windowFeatures(ip))
				w.labels = append(w.labels, t.Label)
				w.traces = append(w.traces, ti)
			}
			continue
		}
		take := min(n, maxPerTrace)
		for j := range take {
			k := j * n / take
			w.x = append(w.x, windowFeatures(ip[k*size:(k+1)*size]))
			w.labels = append(w.labels, t.Label)
			w.traces = append(w.traces, ti)
		}
	}
	return w
}

// softmaxRegression is a fitted multinomial logistic regression.
type softmaxRegression struct {
	classes   []string
	mean, std []float64  // feature standardisation, from the training rows
	w         *mat.Dense // classes × (features+1), last column the bias
}

// l2Penalty is the weight decay of the classifier (on weights, not biases).
const l2Penalty = 1e-3

// fitSoftmax fits the classifier to rows x with labels y.
func fitSoftmax(x [][]float64, y []string) (*softmaxRegression, error) {
	if len(x) == 0 {
		return nil, errors.New("no training windows")
	}
	classes := slices.Clone(y)
	sort.Strings(classes)
	classes = slices.Compact(classes)
	if len(classes) < 2 {
		return nil, fmt.Errorf("need at least two labels to train a classifier, have %v", classes)
	}
	nf := len(x[0])
	m := &softmaxRegression{classes: classes, mean: make([]float64, nf), std: make([]float64, nf)}
	col := make([]float64, len(x))
	for j := range nf {
		for i := range x {
			col[i] = x[i][j]
		}
		m.mean[j], m.std[j] = stat.MeanStdDev(col, nil)
		if !(m.std[j] > 1e-12) {
			m.std[j] = 1
		}
	}
	xs := mat.NewDense(len(x), nf+1, nil)
	for i := range x {
		row := m.standardise(x[i])
		xs.SetRow(i, row)
	}
	yi := make([]int, len(y))
	for i, l := range y {
		yi[i], _ = slices.BinarySearch(classes, l)
	}
	k, d, n := len(classes), nf+1, float64(len(x))
	scores := mat.NewDense(len(x), k, nil)
	probs := mat.NewDense(len(x), k, nil)
	// forward fills probs and returns the mean cross-entropy + penalty.
	forward := func(wv []float64) float64 {
		w := mat.NewDense(k, d, wv)
		scores.Mul(xs, w.T())
		loss := 0.0
		for i := range len(x) {
			row := scores.RawRowView(i)
			lse := floats.LogSumExp(row)
			pr := probs.RawRowView(i)
			for c := range row {
				pr[c] = math.Exp(row[c] - lse)
			}
			loss -= row[yi[i]] - lse
		}
		loss /= n
		for c := range k {
			for j := range nf {
				loss += 0.5 * l2Penalty * wv[c*d+j] * wv[c*d+j]
			}
		}
		return loss
	}
	problem := optimize.Problem{
		Func: forward,
		Grad: func(grad, wv []float64) {
			forward(wv)
			// dL/dW = (P − Y)ᵀ X / n + λ W (biases unpenalised)
			for i := range len(x) {
				probs.Set(i, yi[i], probs.At(i, yi[i])-1)
			}
			g := mat.NewDense(k, d, grad)
			g.Mul(probs.T(), xs)
			g.Scale(1/n, g)
			for c := range k {
				for j := range nf {
					grad[c*d+j] += l2Penalty * wv[c*d+j]
				}
			}
		},
	}
	res, err := optimize.Minimize(problem, make([]float64, k*d),
		&optimize.Settings{GradientThreshold: 1e-6, MajorIterations: 500}, &optimize.LBFGS{})
	if err != nil && res == nil {
		return nil, fmt.Errorf("fitting workload classifier: %w", err)
	}
	m.w = mat.NewDense(k, d, res.X)
	return m, nil
}

func (m *softmaxRegression) standardise(f []float64) []float64 {
	row := make([]float64, len(f)+1)
	for j, v := range f {
		row[j] = (v - m.mean[j]) / m.std[j]
	}
	row[len(f)] = 1
	return row
}

// predict returns the most probable label of a feature row.
func (m *softmaxRegression) predict(f []float64) string {
	row := mat.NewVecDense(len(f)+1, m.standardise(f))
	var s mat.VecDense
	s.MulVec(m.w, row)
	return m.classes[floats.MaxIdx(s.RawVector().Data)]
}

// ClassifierScore is how well a classifier labels the real test windows.
type ClassifierScore struct {
	Accuracy     float64            `json:"accuracy"`
	MacroF1      float64            `json:"macro_f1"`
	PerLabelF1   map[string]float64 `json:"per_label_f1"`
	TrainWindows int                `json:"train_windows"`
	TestWindows  int                `json:"test_windows"`
}

func score(m *softmaxRegression, test labelledWindows, trainWindows int) ClassifierScore {
	s := ClassifierScore{PerLabelF1: map[string]float64{}, TrainWindows: trainWindows, TestWindows: len(test.x)}
	tp, fp, fn := map[string]float64{}, map[string]float64{}, map[string]float64{}
	correct := 0.0
	for i, f := range test.x {
		pred, truth := m.predict(f), test.labels[i]
		if pred == truth {
			correct++
			tp[truth]++
		} else {
			fp[pred]++
			fn[truth]++
		}
	}
	s.Accuracy = correct / float64(len(test.x))
	// Macro-F1 over the labels present in the test set.
	labels := slices.Clone(test.labels)
	sort.Strings(labels)
	labels = slices.Compact(labels)
	for _, l := range labels {
		f1 := 0.0
		if d := 2*tp[l] + fp[l] + fn[l]; d > 0 {
			f1 = 2 * tp[l] / d
		}
		s.PerLabelF1[l] = f1
		s.MacroF1 += f1
	}
	s.MacroF1 /= float64(len(labels))
	return s
}

// Utility reports the downstream-utility test.
type Utility struct {
	WindowPackets int      `json:"window_packets"`
	Features      []string `json:"features"`
	Model         string   `json:"model"`
	// TRTR: trained on real (half of each label's files), tested on the other half.
	TRTR *ClassifierScore `json:"trtr,omitempty"`
	// TSTR: trained on all synthetic traffic, tested on the same real half.
	TSTR *ClassifierScore `json:"tstr,omitempty"`
	// TSTRToTRTRAccuracy is TSTR accuracy over TRTR accuracy (1: no loss of utility).
	TSTRToTRTRAccuracy *float64 `json:"tstr_to_trtr_accuracy,omitempty"`
	Note               string   `json:"note,omitempty"`
}

// utility runs TRTR and TSTR. Real traces are split by file: within each
// label, files in sorted order alternate between training and testing, so no
// session is on both sides.
func utility(real, synth []*Trace, windowPackets int) *Utility {
	u := &Utility{WindowPackets: windowPackets, Features: windowFeatureNames,
		Model: "multinomial logistic regression (L2 1e-3), standardised features, fitted with gonum/optimize L-BFGS"}
	const maxPerTrace = 64
	rw := windowsOf(real, windowPackets, maxPerTrace)
	sw := windowsOf(synth, windowPackets, maxPerTrace)
	trainSet := map[int]bool{}
	byLabel := map[string][]int{}
	for i, t := range real {
		byLabel[t.Label] = append(byLabel[t.Label], i)
	}
	for _, idx := range byLabel {
		sort.Slice(idx, func(a, b int) bool { return real[idx[a]].Path < real[idx[b]].Path })
		for j, i := range idx {
			if j%2 == 0 {
				trainSet[i] = true
			}
		}
	}
	var rTrain, rTest labelledWindows
	for i := range rw.x {
		dst := &rTest
		if trainSet[rw.traces[i]] {
			dst = &rTrain
		}
		dst.x = append(dst.x, rw.x[i])
		dst.labels = append(dst.labels, rw.labels[i])
	}
	if len(rTest.x) == 0 {
		u.Note = "no real test windows: each label needs at least two real files with enough packets"
		return u
	}
	var notes []string
	if m, err := fitSoftmax(rTrain.x, rTrain.labels); err != nil {
		notes = append(notes, "TRTR: "+err.Error())
	} else {
		s := score(m, rTest, len(rTrain.x))
		u.TRTR = &s
	}
	if m, err := fitSoftmax(sw.x, sw.labels); err != nil {
		notes = append(notes, "TSTR: "+err.Error())
	} else {
		s := score(m, rTest, len(sw.x))
		u.TSTR = &s
	}
	if u.TRTR != nil && u.TSTR != nil && u.TRTR.Accuracy > 0 {
		r := u.TSTR.Accuracy / u.TRTR.Accuracy
		u.TSTRToTRTRAccuracy = &r
	}
	if len(notes) > 0 {
		u.Note = fmt.Sprint(notes)
	}
	return u
}
