package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/arrowdata/pipeline"
)

func init() {
	register(&cli.Command{
		Name:  "dataset",
		Usage: "inspect token datasets",
		Description: "Example:\n   netssm-cli dataset info data.parquet\n\n" +
			"Subcommands read a dataset made by `netssm-cli tokenize`.",
		Subcommands: []*cli.Command{{
			Name:      "info",
			Usage:     "traces, packets and tokens per label, token histogram, protocol mix",
			ArgsUsage: "DATA.parquet",
			Description: "Example:\n   netssm-cli dataset info data.parquet --top 30\n\n" +
				"Reads the dataset once, row group by row group.",
			Flags: []cli.Flag{&cli.IntFlag{Name: "top", Value: 20, Usage: "tokens shown in the histogram"}},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usagef("dataset info takes one dataset, got %d arguments", c.NArg())
				}
				info, err := pipeline.Info(c.Args().First())
				if err != nil {
					return err
				}
				return info.Write(os.Stdout, c.Int("top"))
			},
		}},
	})
}
