package main

import (
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/export"
	"github.com/netssm/netssm/model"
)

func init() {
	register(&cli.Command{
		Name:  "model",
		Usage: "inspect model configurations and exported model bundles",
		Description: "Example:\n   netssm-cli model info --preset small\n   netssm-cli model info runs/web/bundle\n\n" +
			"Subcommands describe a model without running it.",
		Subcommands: []*cli.Command{{
			Name:      "info",
			Usage:     "print a preset's or a bundle's config, parameter count and graph sizes",
			ArgsUsage: "[BUNDLE]",
			Description: "Example:\n   netssm-cli model info --preset paper --step-batch 32\n   netssm-cli model info runs/web/bundle\n\n" +
				"With --preset, builds the prefill and step graphs of the preset (without weights)\n" +
				"and reports their sizes; with a bundle directory, verifies it (checksums, graph\n" +
				"signatures) and reports what its model.json and graphs hold. Presets: " + strings.Join(model.Presets(), ", ") + ".",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "preset", Usage: "describe a preset: " + strings.Join(model.Presets(), " | ")},
				&cli.IntFlag{Name: "vocab", Usage: "tokenizer vocabulary size for --preset (padded to a multiple of 16; default the preset's)"},
				&cli.IntFlag{Name: "prefill-length", Usage: "prompt tokens per prefill run for --preset (default the chunk size)"},
				&cli.IntFlag{Name: "step-batch", Value: 1, Usage: "sequences per step run for --preset"},
			},
			Action: modelInfo,
		}},
	})
}

func modelInfo(c *cli.Context) error {
	preset := c.String("preset")
	switch {
	case preset != "" && c.NArg() > 0:
		return usagef("give either --preset or a bundle directory, not both")
	case preset == "" && c.NArg() != 1:
		return usagef("give --preset NAME or one bundle directory")
	}
	var s *export.Summary
	if preset != "" {
		cfg, err := model.Preset(preset)
		if err != nil {
			return usagef("--preset: %v", err)
		}
		if v := c.Int("vocab"); v > 0 {
			cfg = cfg.WithVocab(v)
		}
		if c.Int("step-batch") <= 0 || c.Int("prefill-length") < 0 {
			return usagef("--step-batch must be positive and --prefill-length not negative")
		}
		s, err = export.Summarize("preset "+preset, cfg, export.Options{PrefillLength: c.Int("prefill-length"), StepBatch: c.Int("step-batch")})
		if err != nil {
			return err
		}
	} else {
		b, err := export.Load(c.Args().First())
		if err != nil {
			return err
		}
		if s, err = b.Summary(); err != nil {
			return err
		}
	}
	return s.WriteText(os.Stdout)
}
