package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/plots"
	"github.com/netssm/netssm/train"
)

func init() {
	addPlotSubcommand(&cli.Command{
		Name:      "loss",
		Usage:     "draw a training run's loss curve (train, validation, unigram baseline)",
		ArgsUsage: "RUN_DIR",
		Description: "Example:\n   netssm-cli plot loss runs/small\n\n" +
			"Reads RUN_DIR/metrics.jsonl and writes RUN_DIR/loss.png and loss.svg; it can be\n" +
			"run while training goes on.",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("plot loss takes one RUN_DIR")
			}
			dir := c.Args().First()
			if err := plotLoss(dir); err != nil {
				return err
			}
			fmt.Println(filepath.Join(dir, "loss.png"), filepath.Join(dir, "loss.svg"))
			return nil
		},
	})
}

// plotLoss draws RUN_DIR/loss.png and loss.svg from metrics.jsonl: the
// training loss, the periodic validation loss and its unigram baseline
// against tokens seen, and the final validation on every held-out token (a
// different measurement: all of each trace, not a bounded share) as two
// labelled markers of its own.
func plotLoss(runDir string) error {
	path := filepath.Join(runDir, "metrics.jsonl")
	rows, err := train.ReadMetrics(path)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("%s has no rows yet", path)
	}
	tr := plots.Series{Name: "train"}
	va := plots.Series{Name: "validation"}
	un := plots.Series{Name: "unigram baseline (val)"}
	fullVal := plots.Series{Name: "final validation, every held-out token", Points: true}
	fullUni := plots.Series{Name: "its unigram baseline", Points: true}
	for _, r := range rows {
		x := float64(r.Tokens)
		if r.ValFull {
			fullVal.X, fullVal.Y = append(fullVal.X, x), append(fullVal.Y, *r.ValLoss)
			fullUni.X, fullUni.Y = append(fullUni.X, x), append(fullUni.Y, *r.Baseline)
			continue
		}
		tr.X, tr.Y = append(tr.X, x), append(tr.Y, r.Loss)
		if r.ValLoss != nil {
			va.X, va.Y = append(va.X, x), append(va.Y, *r.ValLoss)
		}
		if r.Baseline != nil {
			un.X, un.Y = append(un.X, x), append(un.Y, *r.Baseline)
		}
	}
	series := []plots.Series{tr}
	for _, s := range []plots.Series{va, un, fullVal, fullUni} {
		if len(s.X) > 0 {
			series = append(series, s)
		}
	}
	return plots.Lines(filepath.Join(runDir, "loss"), "Training loss", "tokens seen", "loss (nats/token)", false, series...)
}
