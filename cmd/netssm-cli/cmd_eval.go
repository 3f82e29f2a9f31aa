package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/eval"
)

func init() {
	register(&cli.Command{
		Name:      "eval",
		Usage:     "compare synthetic captures with real ones: report.md, metrics.json, plots",
		ArgsUsage: " ",
		Description: "Example:\n   netssm-cli eval --real data/pcaps --synth samples/ --train data/train --out report\n\n" +
			"Each of --real, --synth and --train takes capture files or directories (searched\n" +
			"for *.pcap, *.pcapng, *.cap) and may be repeated. Works on any captures, not only\n" +
			"netssm's. Labels come from --labels FILE.csv (columns file,label) or else from the\n" +
			"name of the directory holding each capture.\n\n" +
			"Writes REPORT_DIR/report.md, metrics.json and plots/ (PNG + SVG, and figures.json\n" +
			"for `netssm-cli plot`): divergences per label and pooled (JSD, TV, Hellinger,\n" +
			"Wasserstein-1), protocol compliance of both sides (the synthetic side judged\n" +
			"against the real one), flow structure over the first --flow-window packets of each\n" +
			"trace, the label-confusion matrix, a TSTR/TRTR workload classifier, tshark's\n" +
			"malformed frames (when tshark is on PATH), and, with --train, memorisation figures.\n" +
			"A side that fails protocol compliance is reported loudly; with --strict that also\n" +
			"makes the exit code 1. What each figure means: docs/eval.md.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "real", Usage: "real captures (files or directories)", Required: true},
			&cli.StringSliceFlag{Name: "synth", Usage: "synthetic captures (files or directories)", Required: true},
			&cli.StringSliceFlag{Name: "train", Usage: "training captures, for the memorisation figures"},
			&cli.StringFlag{Name: "labels", Usage: "CSV file with columns file,label"},
			&cli.StringFlag{Name: "out", Usage: "report directory (created)", Required: true},
			&cli.IntFlag{Name: "window", Value: 200, Usage: "classifier window, in IP packets"},
			&cli.BoolFlag{Name: "no-utility", Usage: "skip the TSTR/TRTR classifier"},
			&cli.IntFlag{Name: "flow-window", Value: eval.DefaultFlowWindow, Usage: "flow-structure figures count the first `N` IP packets of each trace"},
			&cli.BoolFlag{Name: "no-tshark", Usage: "do not run tshark to count malformed frames"},
			&cli.BoolFlag{Name: "strict", Usage: "exit 1 when the synthetic side fails protocol compliance"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("eval takes no arguments (captures go in --real/--synth/--train), got %q", c.Args().Slice())
			}
			if c.Int("window") < 8 {
				return usagef("--window %d: want at least 8 packets", c.Int("window"))
			}
			if c.Int("flow-window") < 1 {
				return usagef("--flow-window %d: want at least 1 packet", c.Int("flow-window"))
			}
			real, err := eval.ExpandCaptures(c.StringSlice("real"))
			if err != nil {
				return fmt.Errorf("--real: %w", err)
			}
			synth, err := eval.ExpandCaptures(c.StringSlice("synth"))
			if err != nil {
				return fmt.Errorf("--synth: %w", err)
			}
			var train []string
			if len(c.StringSlice("train")) > 0 {
				if train, err = eval.ExpandCaptures(c.StringSlice("train")); err != nil {
					return fmt.Errorf("--train: %w", err)
				}
			}
			labels, err := eval.ReadLabels(c.String("labels"))
			if err != nil {
				return fmt.Errorf("--labels: %w", err)
			}
			tshark := ""
			if !c.Bool("no-tshark") {
				if tshark, err = exec.LookPath("tshark"); err != nil {
					slog.Info("tshark not found on PATH: malformed frames not counted")
					tshark = ""
				}
			}
			r, err := eval.Run(eval.Config{
				Real: real, Synth: synth, Train: train, Labels: labels, OutDir: c.String("out"),
				Options: eval.Options{WindowPackets: c.Int("window"), SkipUtility: c.Bool("no-utility"),
					FlowWindow: c.Int("flow-window"), Tshark: tshark},
			})
			if err != nil {
				return err
			}
			printEvalSummary(r, c.String("out"))
			if c.Bool("strict") && !r.Compliance.Synth.Pass {
				return fmt.Errorf("synthetic captures fail protocol compliance (%s); see %s/report.md",
					strings.Join(r.Compliance.Synth.Failed(), ", "), c.String("out"))
			}
			return nil
		},
	})
}

func printEvalSummary(r *eval.Report, out string) {
	p := r.Fidelity.Pooled
	fmt.Printf("report: %s/report.md (%d real, %d synthetic IP packets; %.1f s)\n",
		out, r.Inputs.Real.IPPackets, r.Inputs.Synth.IPPackets, r.ElapsedS)
	fmt.Printf("fidelity (pooled): mean JSD %.4f, mean TV %.4f, mean Hellinger %.4f\n", p.MeanJSD, p.MeanTV, p.MeanHellinger)
	for _, side := range []struct {
		name string
		c    *eval.Compliance
	}{{"real", &r.Compliance.Real}, {"synthetic", &r.Compliance.Synth}} {
		if side.c.Pass {
			fmt.Printf("compliance %s: pass\n", side.name)
		} else {
			fmt.Fprintf(os.Stderr, "netssm-cli: WARNING: %s captures FAIL protocol compliance: %s\n",
				side.name, strings.Join(side.c.Failed(), ", "))
		}
	}
	if fs := r.FlowStructure; fs != nil {
		p := fs.Pooled
		fmt.Printf("flow structure (first %d packets of each trace, real / synthetic): flows %.1f / %.1f, IP addresses %.1f / %.1f, single-packet flows %s / %s\n",
			fs.WindowPackets, p.Real.FlowsPerWindow, p.Synth.FlowsPerWindow, p.Real.AddressesPerWindow, p.Synth.AddressesPerWindow,
			p.Real.SinglePacketFlows, p.Synth.SinglePacketFlows)
	}
	if lc := r.LabelConfusion; lc != nil && lc.Compared > 0 {
		fmt.Printf("label confusion: %d of %d synthetic labels closest to their own real label\n", lc.OwnClosest, lc.Compared)
	}
	if m := r.Malformed; m != nil {
		fmt.Printf("malformed frames (tshark): real %s, synthetic %s\n", m.Real.Frames, m.Synth.Frames)
	}
	if u := r.Utility; u != nil && u.TRTR != nil && u.TSTR != nil {
		fmt.Printf("utility: TRTR accuracy %.3f macro-F1 %.3f; TSTR accuracy %.3f macro-F1 %.3f\n",
			u.TRTR.Accuracy, u.TRTR.MacroF1, u.TSTR.Accuracy, u.TSTR.MacroF1)
	}
	if pr := r.Privacy; pr != nil {
		fmt.Printf("privacy: synthetic headers verbatim in training %s; DCR median %.1f B (held-out real %.1f B)\n",
			pr.SynthVerbatim, pr.SynthDCR.Median, pr.RealDCR.Median)
	}
}
