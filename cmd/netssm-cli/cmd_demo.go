package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
			"  tokenize → train (tiny preset, CPU) → export → sample → eval\n" +
			"and ends with where the PCAPs, the report and the plots are, and three figures:\n" +
			"validation loss against the unigram baseline, the share of generated packets that\n" +
			"parse as IP + TCP/UDP, and the mean Jensen–Shannon divergence real vs synthetic.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Value: "netssm-demo", Usage: "output directory (must not hold an earlier demo)"},
			&cli.Int64Flag{Name: "steps", Value: 300, Usage: "training steps"},
			&cli.DurationFlag{Name: "time", Value: 150 * time.Second, Usage: "training time limit"},
			&cli.IntFlag{Name: "traces", Value: 2, Usage: "synthetic traces per label"},
			&cli.IntFlag{Name: "packets", Value: 200, Usage: "packets per synthetic trace"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed for training and sampling"},
		},
		Action: demoAction,
	})
}

func demoAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("demo takes no arguments; the output directory is --out")
	}
	out := c.String("out")
	if _, err := os.Stat(filepath.Join(out, "run", "config.json")); err == nil {
		return fmt.Errorf("%s already holds a demo: remove it or choose another --out", out)
	}
	started := time.Now()
	caps := filepath.Join(out, "captures")
	labels, err := extractDemoCaptures(caps)
	if err != nil {
		return err
	}
	// Global flags the user gave (e.g. --ort-lib, --quiet) go to every stage.
	global := []string{"netssm-cli"}
	if p := c.String("ort-lib"); p != "" {
		global = append(global, "--ort-lib", p)
	}
	if c.Bool("quiet") {
		global = append(global, "--quiet")
	}
	stage := func(name string, args ...string) error {
		fmt.Fprintf(os.Stderr, "\n== %s ==\n", name)
		app := newApp()
		if err := app.Run(append(append(global, name), args...)); err != nil {
			return fmt.Errorf("demo stage %s: %w", name, err)
		}
		return nil
	}
	seed := strconv.FormatUint(c.Uint64("seed"), 10)
	data := filepath.Join(out, "data.parquet")
	run := filepath.Join(out, "run")
	bundle := filepath.Join(out, "model")
	synth := filepath.Join(out, "synthetic")
	report := filepath.Join(out, "report")
	if err := stage("tokenize", "-o", data, caps); err != nil {
		return err
	}
	// Never with copy logits (--prev-packets): trained on four short
	// captures with them, the model's sampled traffic copies a malformed
	// first packet onwards (36 % of synthetic packets parsed as IP +
	// TCP/UDP, 100 % without; see README).
	if err := stage("train", "--data", data, "--val-frac", "0.34", "--preset", "tiny", "--ctx", "512", "--batch", "4",
		"--prev-packets", "0",
		"--steps", strconv.FormatInt(c.Int64("steps"), 10), "--time", c.Duration("time").String(),
		"--lr", "3e-3", "--warmup", "20", "--eval-every", "50", "--seed", seed, "--out", run); err != nil {
		return err
	}
	if err := stage("export", "-o", bundle, run); err != nil {
		return err
	}
	for _, label := range labels {
		if err := stage("sample", "--model", bundle, "--label", label, "--traces", strconv.Itoa(c.Int("traces")),
			"--batch", strconv.Itoa(c.Int("traces")), "--packets", strconv.Itoa(c.Int("packets")),
			"--seed", seed, "-o", filepath.Join(synth, label)+string(filepath.Separator)); err != nil {
			return err
		}
	}
	if err := stage("eval", "--real", caps, "--synth", synth, "--out", report); err != nil {
		return err
	}
	return demoSummary(out, run, synth, report, time.Since(started))
}

// extractDemoCaptures writes the embedded captures to dir and returns their
// labels (the directory names).
func extractDemoCaptures(dir string) ([]string, error) {
	var labels []string
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
			if p != "." && filepath.Dir(p) == "." {
				labels = append(labels, p)
			}
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return nil, fmt.Errorf("writing the example captures to %s: %w", dir, err)
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("this binary carries no example captures")
	}
	return labels, nil
}

// demoSummary prints where everything is and the three figures that matter.
func demoSummary(out, run, synth, report string, took time.Duration) error {
	rows, err := train.ReadMetrics(filepath.Join(run, "metrics.jsonl"))
	if err != nil {
		return err
	}
	var val, uni float64
	for _, r := range rows {
		if r.ValLoss != nil && r.Baseline != nil {
			val, uni = *r.ValLoss, *r.Baseline
		}
	}
	var m struct {
		Fidelity struct {
			Pooled struct {
				MeanJSD float64 `json:"mean_jsd"`
			} `json:"pooled"`
		} `json:"fidelity"`
		Compliance struct {
			Synth struct {
				Parse struct {
					Value float64 `json:"value"`
				} `json:"ip_tcp_udp_parse"`
			} `json:"synth"`
			Real struct {
				Parse struct {
					Value float64 `json:"value"`
				} `json:"ip_tcp_udp_parse"`
			} `json:"real"`
		} `json:"compliance"`
	}
	b, err := os.ReadFile(filepath.Join(report, "metrics.json"))
	if err != nil {
		return fmt.Errorf("reading the evaluation: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(report, "metrics.json"), err)
	}
	fmt.Printf("\nnetssm demo finished in %s. Everything is in %s/:\n", took.Round(time.Second), out)
	fmt.Printf("  synthetic PCAPs   %s/<label>/trace-*.pcap\n", synth)
	fmt.Printf("  evaluation report %s/report.md (metrics.json beside it)\n", report)
	fmt.Printf("  plots             %s/plots/*.png|svg, loss curve %s/loss.png\n", report, run)
	fmt.Printf("\n  validation loss          %.3f nats/token vs unigram baseline %.3f (%.0f%% of it)\n", val, uni, 100*val/uni)
	fmt.Printf("  IP+TCP/UDP parse rate    %.1f%% synthetic (real: %.1f%%)\n", 100*m.Compliance.Synth.Parse.Value, 100*m.Compliance.Real.Parse.Value)
	fmt.Printf("  mean Jensen–Shannon div. %.3f real vs synthetic (0 = identical distributions, 1 = disjoint)\n", m.Fidelity.Pooled.MeanJSD)
	fmt.Printf("\nThe demo model is tiny and trained for minutes on a few hundred packets; train on\nyour own captures for real use (see README).\n")
	return nil
}
