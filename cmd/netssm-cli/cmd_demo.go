package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm"
	"github.com/netssm/netssm/train"
)

func init() {
	register(&cli.Command{
		Name:  "demo",
		Usage: "run the whole pipeline on the embedded example captures (CPU, a few minutes)",
		Description: "Example:\n   netssm-cli demo --out netssm-demo\n\n" +
			"Writes the embedded example captures (real curl/HTTP, DNS and UDP-stream traffic\n" +
			"captured on loopback and in network namespaces by testdata/make_captures.sh) to\n" +
			"OUT/captures, then runs the same commands a user would:\n" +
			"  tokenize → train (tiny preset, CPU) → export → sample per label → eval\n" +
			"The model trains on the first capture of each label; the others are held out, for\n" +
			"the validation loss and as the real traffic the classifier is tested on. It ends with\n" +
			"where the PCAPs, the report and the plots are, and what they show: validation loss\n" +
			"against the unigram baseline, whether a classifier trained on the synthetic traffic\n" +
			"recognises the held-out real traffic's label (TSTR) better than chance, that the\n" +
			"synthetic files differ under every label, and the share of packets that parse.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Value: "netssm-demo", Usage: "output directory (must not hold an earlier demo)"},
			&cli.Int64Flag{Name: "steps", Value: 100, Usage: "training steps"},
			&cli.DurationFlag{Name: "time", Value: 150 * time.Second, Usage: "training time limit"},
			&cli.IntFlag{Name: "traces", Value: 3, Usage: "synthetic traces per label"},
			&cli.IntFlag{Name: "packets", Value: 60, Usage: "packets per synthetic trace"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed for training and sampling"},
		},
		Action: demoAction,
	})
}

// demoPaths are where the demo's stages write.
type demoPaths struct {
	out, caps, trainData, heldData, run, bundle, synth, report string
}

func newDemoPaths(out string) demoPaths {
	return demoPaths{out: out, caps: filepath.Join(out, "captures"),
		trainData: filepath.Join(out, "train.parquet"), heldData: filepath.Join(out, "heldout.parquet"),
		run: filepath.Join(out, "run"), bundle: filepath.Join(out, "model"),
		synth: filepath.Join(out, "synthetic"), report: filepath.Join(out, "report")}
}

func demoAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("demo takes no arguments; the output directory is --out")
	}
	p := newDemoPaths(c.String("out"))
	if _, err := os.Stat(filepath.Join(p.run, "config.json")); err == nil {
		return fmt.Errorf("%s already holds a demo: remove it or choose another --out", p.out)
	}
	started := time.Now()
	byLabel, err := extractDemoCaptures(p.caps)
	if err != nil {
		return err
	}
	stage := demoStage(c)
	seed := strconv.FormatUint(c.Uint64("seed"), 10)
	trainFiles, heldFiles := splitDemoCaptures(byLabel)
	if err := stage("tokenize", append([]string{"-o", p.trainData}, trainFiles...)...); err != nil {
		return err
	}
	if err := stage("tokenize", append([]string{"-o", p.heldData}, heldFiles...)...); err != nil {
		return err
	}
	// Stretches of one window, each read behind its capture's label token,
	// so that every walk starts as generation does and the label is never far
	// behind: the tiny model then draws the traffic of the label it is given.
	if err := stage("train", "--data", p.trainData, "--val", p.heldData, "--preset", "tiny", "--ctx", "512", "--batch", "4", "--segment", "512",
		"--steps", strconv.FormatInt(c.Int64("steps"), 10), "--time", c.Duration("time").String(),
		"--lr", "3e-3", "--warmup", "20", "--eval-every", "20", "--seed", seed, "--out", p.run); err != nil {
		return err
	}
	if err := stage("export", "-o", p.bundle, p.run); err != nil {
		return err
	}
	for _, label := range sortedKeys(byLabel) {
		if err := stage("sample", "--model", p.bundle, "--label", label, "--traces", strconv.Itoa(c.Int("traces")),
			"--batch", strconv.Itoa(c.Int("traces")), "--packets", strconv.Itoa(c.Int("packets")),
			"--seed", seed, "-o", filepath.Join(p.synth, label)+string(filepath.Separator)); err != nil {
			return err
		}
	}
	// The classifier trains on the first file of each label and tests on
	// the others, the files the model never saw (eval's TRTR split).
	if err := stage("eval", "--real", p.caps, "--synth", p.synth, "--window", "20", "--out", p.report); err != nil {
		return err
	}
	return demoSummary(p, len(byLabel), time.Since(started))
}

// demoStage runs one netssm-cli command as a stage of the demo, passing on
// the global flags the user gave (e.g. --ort-lib, --quiet).
func demoStage(c *cli.Context) func(name string, args ...string) error {
	global := []string{"netssm-cli"}
	if p := c.String("ort-lib"); p != "" {
		global = append(global, "--ort-lib", p)
	}
	if c.Bool("quiet") {
		global = append(global, "--quiet")
	}
	return func(name string, args ...string) error {
		fmt.Fprintf(os.Stderr, "\n== %s ==\n", name)
		if err := newApp().Run(append(append(global, name), args...)); err != nil {
			return fmt.Errorf("demo stage %s: %w", name, err)
		}
		return nil
	}
}

// splitDemoCaptures trains on the first capture of each label (in sorted
// order) and holds out the others.
func splitDemoCaptures(byLabel map[string][]string) (trainFiles, heldFiles []string) {
	for _, label := range sortedKeys(byLabel) {
		files := byLabel[label]
		trainFiles = append(trainFiles, files[0])
		heldFiles = append(heldFiles, files[1:]...)
	}
	return trainFiles, heldFiles
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// extractDemoCaptures writes the embedded captures to dir and returns
// their files by label (the directory names), sorted; every label has two
// or more.
func extractDemoCaptures(dir string) (map[string][]string, error) {
	byLabel := map[string][]string{}
	root, err := fs.Sub(netssm.DemoCaptures, netssm.DemoCapturesRoot)
	if err != nil {
		return nil, err
	}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		label := filepath.Base(filepath.Dir(dst))
		byLabel[label] = append(byLabel[label], dst)
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return nil, fmt.Errorf("writing the example captures to %s: %w", dir, err)
	}
	if len(byLabel) == 0 {
		return nil, fmt.Errorf("this binary carries no example captures")
	}
	for label, files := range byLabel {
		if len(files) < 2 {
			return nil, fmt.Errorf("example captures: label %s has %d file; the demo trains on one and holds out the rest", label, len(files))
		}
		sort.Strings(files)
	}
	return byLabel, nil
}

// demoReport is what the demo's summary reads of eval's metrics.json.
type demoReport struct {
	Fidelity struct {
		Pooled struct {
			MeanJSD float64 `json:"mean_jsd"`
		} `json:"pooled"`
	} `json:"fidelity"`
	Compliance struct {
		Synth, Real struct {
			Parse struct {
				Value float64 `json:"value"`
			} `json:"ip_tcp_udp_parse"`
		}
	} `json:"compliance"`
	Utility *struct {
		TRTR, TSTR *struct {
			Accuracy    float64 `json:"accuracy"`
			MacroF1     float64 `json:"macro_f1"`
			TestWindows int     `json:"test_windows"`
		}
		Note string `json:"note"`
	} `json:"utility"`
}

func readDemoReport(report string) (*demoReport, error) {
	path := filepath.Join(report, "metrics.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the evaluation: %w", err)
	}
	var m demoReport
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// demoValidation is the run's final validation (every held-out token) and
// the step of its best periodic one (the checkpoint exported).
func demoValidation(run string) (val, uni float64, bestStep, lastStep int64, err error) {
	rows, err := train.ReadMetrics(filepath.Join(run, "metrics.jsonl"))
	if err != nil {
		return 0, 0, 0, 0, err
	}
	best := math.Inf(1)
	for _, r := range rows {
		lastStep = r.Step
		if r.ValLoss == nil || r.Baseline == nil {
			continue
		}
		val, uni = *r.ValLoss, *r.Baseline
		if !r.ValFull && *r.ValLoss < best {
			best, bestStep = *r.ValLoss, r.Step
		}
	}
	return val, uni, bestStep, lastStep, nil
}

// distinctFiles counts the synthetic files and says whether any two of them,
// under one label or two, are byte-identical.
func distinctFiles(synth string) (files int, duplicate string, err error) {
	seen := map[[32]byte]string{}
	err = filepath.WalkDir(synth, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		sum := sha256.Sum256(b)
		if other, ok := seen[sum]; ok && duplicate == "" {
			duplicate = other + " = " + p
		}
		seen[sum] = p
		return nil
	})
	return files, duplicate, err
}

// demoSummary prints where everything is and what it shows.
func demoSummary(p demoPaths, labels int, took time.Duration) error {
	val, uni, bestStep, lastStep, err := demoValidation(p.run)
	if err != nil {
		return err
	}
	m, err := readDemoReport(p.report)
	if err != nil {
		return err
	}
	files, dup, err := distinctFiles(p.synth)
	if err != nil {
		return err
	}
	fmt.Printf("\nnetssm demo finished in %s. Everything is in %s/:\n", took.Round(time.Second), p.out)
	fmt.Printf("  synthetic PCAPs   %s/<label>/trace-*.pcap\n", p.synth)
	fmt.Printf("  evaluation report %s/report.md (metrics.json beside it)\n", p.report)
	fmt.Printf("  plots             %s/plots/*.png|svg, loss curve %s/loss.png\n\n", p.report, p.run)
	fmt.Printf("  held-out loss      %.3f nats/token vs unigram baseline %.3f (%.0f%% of it); exported step %d of %d\n", val, uni, 100*val/uni, bestStep, lastStep)
	chance := 1 / float64(labels)
	if u := m.Utility; u != nil && u.TSTR != nil {
		// Macro-F1, not accuracy: the held-out windows are not balanced
		// across labels, and always naming the commonest label scores a
		// high accuracy but a macro-F1 below 1/labels.
		verdict := "above chance"
		if u.TSTR.MacroF1 <= chance {
			verdict = "NOT above chance"
		}
		fmt.Printf("  label recognised   TSTR macro-F1 %.2f vs chance %.2f (%d labels): %s; accuracy %.2f on %d held-out real windows", u.TSTR.MacroF1, chance, labels, verdict, u.TSTR.Accuracy, u.TSTR.TestWindows)
		if u.TRTR != nil {
			fmt.Printf("; trained on real: macro-F1 %.2f", u.TRTR.MacroF1)
		}
		fmt.Println()
	} else {
		note := "eval wrote no utility section"
		if u != nil && u.Note != "" {
			note = u.Note
		}
		fmt.Printf("  label recognised   no TSTR score (%s)\n", note)
	}
	if dup == "" {
		fmt.Printf("  files differ       all %d synthetic files are distinct, under every label\n", files)
	} else {
		fmt.Printf("  files differ       NO: %s\n", dup)
	}
	fmt.Printf("  packets parse      %.1f%% synthetic as IP + TCP/UDP (real: %.1f%%); mean JSD real vs synthetic %.3f\n",
		100*m.Compliance.Synth.Parse.Value, 100*m.Compliance.Real.Parse.Value, m.Fidelity.Pooled.MeanJSD)
	fmt.Printf("\nThe demo model is tiny and trained for a minute or two on three captures; train on\nyour own captures for real use (see README).\n")
	return nil
}
