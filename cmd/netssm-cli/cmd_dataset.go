package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/arrowdata/pipeline"
	"github.com/netssm/netssm/tokenizer"
)

func init() {
	register(&cli.Command{
		Name:  "dataset",
		Usage: "inspect token datasets; exchange them with NetSSM",
		Description: "Example:\n   netssm-cli dataset info data.parquet\n\n" +
			"info reads a dataset made by `netssm-cli tokenize`; export-jsonl and import-jsonl\n" +
			"convert between netssm-layout datasets and NetSSM's JSONL dataset files.",
		Subcommands: []*cli.Command{datasetInfoCommand(), datasetExportJSONLCommand(), datasetImportJSONLCommand()},
	})
}

func datasetInfoCommand() *cli.Command {
	return &cli.Command{
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
	}
}

func datasetExportJSONLCommand() *cli.Command {
	return &cli.Command{
		Name:      "export-jsonl",
		Usage:     "write a netssm-layout dataset as NetSSM's JSONL dataset file",
		ArgsUsage: "DATA.parquet",
		Description: "Example:\n   netssm-cli tokenize --layout netssm --labels input/labels.csv -o data.parquet input/\n" +
			"   netssm-cli dataset export-jsonl data.parquet --dir input -o data.jsonl\n\n" +
			"One line per trace, as NetSSM's preprocessor writes them: Data (\"<|label|> \" then\n" +
			"each packet's 128 bytes in decimal, packets joined by \" <|pkt|> \"), Hash (SHA-256\n" +
			"of Filename), Filename (--dir, then the capture's name) and OrigLen (packets).\n" +
			"The file appears only when complete. See docs/netssm-interop.md.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "JSONL file to write (`DATA.jsonl`)"},
			&cli.StringFlag{Name: "dir", Usage: "directory written before each capture name in Filename (`DIR`, as NetSSM was given it)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("dataset export-jsonl takes one dataset, got %d arguments", c.NArg())
			}
			n, err := pipeline.ExportJSONL(c.Args().First(), c.String("output"), pipeline.ExportJSONLOptions{Dir: c.String("dir")})
			if err != nil {
				return err
			}
			fmt.Printf("wrote %s: %d traces\n", c.String("output"), n)
			return nil
		},
	}
}

func datasetImportJSONLCommand() *cli.Command {
	return &cli.Command{
		Name:      "import-jsonl",
		Usage:     "make a netssm-layout dataset from NetSSM's JSONL dataset files",
		ArgsUsage: "DATA.jsonl...",
		Description: "Example:\n   netssm-cli dataset import-jsonl netssm_data.jsonl -o data.parquet\n\n" +
			"One trace per line, labelled from Data's <|label|>; the dataset trains and samples\n" +
			"like any other (`netssm-cli train --data data.parquet`). Every line is checked\n" +
			"(the four fields, Hash = SHA-256 of Filename, 128 byte values per packet, OrigLen);\n" +
			"a bad line stops the import, naming the file and line. NetSSM's files hold no\n" +
			"packet times: packets are placed 1 ms apart. The link type of the rows is read\n" +
			"from the first packet unless --link says it. Exporting the dataset gives the\n" +
			"same file back.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "dataset to write (`DATA.parquet`)"},
			&cli.StringFlag{Name: "link", Usage: "link header the rows open with: ethernet | linux-sll | raw (default: read from the first packet)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("dataset import-jsonl needs at least one JSONL file")
			}
			switch l := c.String("link"); l {
			case "", tokenizer.LinkEthernet, tokenizer.LinkLinuxSLL, tokenizer.LinkRaw:
			default:
				return usagef("--link %q: want ethernet, linux-sll or raw", l)
			}
			n, spec, err := pipeline.ImportJSONL(c.Args().Slice(), c.String("output"), pipeline.ImportJSONLOptions{Link: c.String("link")})
			if err != nil {
				return err
			}
			fmt.Printf("wrote %s: %d traces, labels %v, link %s; vocabulary %d\n", c.String("output"), n, spec.Labels, spec.Link, spec.VocabSize)
			return nil
		},
	}
}
