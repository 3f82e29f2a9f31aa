package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

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
			if err := train.PlotLoss(dir); err != nil {
				return err
			}
			fmt.Println(filepath.Join(dir, "loss.png"), filepath.Join(dir, "loss.svg"))
			return nil
		},
	})
}
