package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/arrowdata/pipeline"
	"github.com/netssm/netssm/pcapout"
)

func init() {
	register(&cli.Command{
		Name:      "detokenize",
		Usage:     "write each trace of a dataset back as a pcap",
		ArgsUsage: "DATA.parquet",
		Description: "Example:\n   netssm-cli detokenize data.parquet -o pcaps/\n\n" +
			"Writes OUT/LABEL/NAME.pcap per trace, LINKTYPE_RAW by default (--link ethernet adds\n" +
			"a synthetic Ethernet header). The original length of each record comes from the IP\n" +
			"length field; IPv4 header checksums are recomputed; packets that cannot be written\n" +
			"as IP are counted and reported. Packet times come from the <dt:k> tokens when the\n" +
			"dataset has them (--exact-times uses the recorded ones), else from the dataset.\n" +
			"A netssm-layout dataset's rows keep their link header: its pcaps take the\n" +
			"dataset's link type, whatever --link says.\n" +
			"This is the code path generation uses.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "output `DIR`"},
			&cli.StringFlag{Name: "link", Value: "raw", Usage: "raw | ethernet"},
			&cli.BoolFlag{Name: "exact-times", Usage: "take packet times from the dataset's ts_ns column even with timing tokens"},
			&cli.IntFlag{Name: "limit", Usage: "only the first `N` traces"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("detokenize takes one dataset, got %d arguments", c.NArg())
			}
			link := pcapout.Link(c.String("link"))
			if link != pcapout.LinkRaw && link != pcapout.LinkEthernet {
				return usagef("--link %q: want raw or ethernet", link)
			}
			rep, err := pipeline.Detokenize(c.Args().First(), c.String("output"), pipeline.DetokenizeOptions{
				Link: link, ExactTimes: c.Bool("exact-times"), Limit: c.Int("limit"),
			})
			if err != nil {
				return err
			}
			fmt.Printf("wrote %d pcaps to %s: %d packets decoded, %d written, %d invalid (not written), %d IPv4 checksums fixed, %d IP lengths repaired, %d traces with grammar problems\n",
				len(rep.Files), c.String("output"), rep.Packets, rep.Written, rep.Invalid, rep.ChecksumFixed, rep.LengthRepaired, rep.GrammarIssues)
			return nil
		},
	})
}
