package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/arrowdata/pipeline"
	"github.com/netssm/netssm/capture"
	"github.com/netssm/netssm/capture/cryptopan"
	"github.com/netssm/netssm/capture/labels"
	"github.com/netssm/netssm/tokenizer"
)

func init() {
	register(&cli.Command{
		Name:      "tokenize",
		Usage:     "turn pcap/pcapng captures into a Parquet dataset of token traces",
		ArgsUsage: "INPUT... (capture files or directories)",
		Description: "Example:\n   netssm-cli tokenize -o data.parquet --labels labels.csv captures/\n\n" +
			"One trace per capture (or per --max-packets packets of it), opening with the\n" +
			"capture's label. Labels come from --label, from --labels (a CSV of file,label),\n" +
			"or else from the name of the directory holding each capture. Layouts v1 and flow\n" +
			"drop link layers; non-IP records are counted and skipped. --layout netssm is\n" +
			"NetSSM's own layout (128-byte rows from the link header on, TCP and UDP packets\n" +
			"only; paper is another name for it; docs/netssm-interop.md): its timing, payload\n" +
			"and checksum options are fixed, and `dataset export-jsonl` writes NetSSM's JSONL.\n" +
			"A bad file is reported and the run goes on (exit 1 at the end); --strict stops\n" +
			"at the first one. The dataset appears only when complete.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "dataset to write (`DATA.parquet`)"},
			&cli.StringFlag{Name: "label", Usage: "label every input with `NAME`"},
			&cli.StringFlag{Name: "labels", Usage: "CSV of file,label rows (`FILE.csv`)"},
			&cli.StringFlag{Name: "layout", Value: "flow", Usage: "flow (per-flow header compression, ~13 tokens per packet; docs/flow-layout.md) | v1 (every kept byte; docs/format.md) | netssm (NetSSM's 128-byte rows; docs/netssm-interop.md; paper is another name for it)"},
			&cli.StringFlag{Name: "timing", Value: "", Usage: "on | off: <dt:k> inter-arrival tokens (default on; not for netssm)"},
			&cli.StringFlag{Name: "payload", Value: "tcp=0,udp=12", Usage: "payload bytes kept per protocol: tcp=N,udp=N[,icmp=N,other=N]"},
			&cli.StringFlag{Name: "checksums", Value: "", Usage: "zero | keep: write the IPv4 header and TCP/UDP/ICMP checksums as zero bytes, or keep them as captured (default zero; v1 only)"},
			&cli.IntFlag{Name: "addr-table", Value: tokenizer.AddrTableDefault, Usage: "flow layout: addresses per IP version a trace's address table holds (`N`; 0: none, token spec version 2, every address spelled out)"},
			&cli.IntFlag{Name: "max-packets", Usage: "split captures into traces of at most `N` packets (0: one trace per capture)"},
			&cli.StringFlag{Name: "anonymize", Usage: "rewrite IP addresses with Crypto-PAn under `KEY` (a passphrase, or 64 hex digits)"},
			&cli.BoolFlag{Name: "strict", Usage: "stop at the first bad input file"},
		},
		Action: runTokenize,
	})
}

func runTokenize(c *cli.Context) error {
	if c.NArg() == 0 {
		return usagef("tokenize needs at least one capture file or directory")
	}
	if c.IsSet("label") && c.IsSet("labels") {
		return usagef("--label and --labels are exclusive")
	}
	spec, err := specFromFlags(c.String("layout"), c.String("timing"), c.String("payload"), c.String("checksums"))
	if err != nil {
		return err
	}
	if err := setAddrTable(c, &spec); err != nil {
		return err
	}
	if spec.Layout == tokenizer.LayoutNetSSM {
		for _, f := range []string{"timing", "payload", "checksums"} {
			if c.IsSet(f) {
				return usagef("--%s: the netssm layout is NetSSM's exactly (no timing, tcp=0,udp=12, checksums kept); drop the flag", f)
			}
		}
	}
	if c.Int("max-packets") < 0 {
		return usagef("--max-packets must be ≥ 0")
	}
	opt := pipeline.TokenizeOptions{Spec: spec, MaxPackets: c.Int("max-packets"), Strict: c.Bool("strict")}
	switch {
	case c.IsSet("label"):
		if c.String("label") == "" {
			return usagef("--label is empty")
		}
		opt.Labels = labels.Fixed(c.String("label"))
	case c.IsSet("labels"):
		if opt.Labels, err = labels.ReadCSV(c.String("labels")); err != nil {
			return err
		}
	}
	if c.IsSet("anonymize") {
		if opt.Anonymize, err = cryptopan.FromPassphrase(c.String("anonymize")); err != nil {
			return usagef("--anonymize: %v", err)
		}
	}
	files, err := capture.FindFiles(c.Args().Slice())
	if err != nil {
		return err
	}
	rep, err := pipeline.Tokenize(c.String("output"), files, opt)
	reportFiles(c.App.ErrWriter, rep.Files)
	if err != nil && !errors.Is(err, pipeline.ErrBadInputs) {
		return err
	}
	fmt.Printf("wrote %s: %d traces, %d packets, %d tokens from %d files (%d bad); vocabulary %d\n",
		c.String("output"), rep.Traces, rep.Packets, rep.Tokens, len(rep.Files), rep.Failed, rep.Spec.VocabSize)
	if err != nil {
		return fmt.Errorf("%d of %d inputs were bad (listed above); fix or drop them, or rerun with --strict to stop at the first", rep.Failed, len(rep.Files))
	}
	return nil
}

// reportFiles says, once each, which inputs were bad and which had records
// skipped or packets truncated, then sums those up; files with nothing to
// say are not listed.
func reportFiles(w io.Writer, files []pipeline.FileReport) {
	var noted, skipped, truncated int64
	for _, f := range files {
		if f.Err != nil {
			fmt.Fprintf(w, "bad input: %v\n", f.Err)
			continue
		}
		n := f.Capture.NonIP + f.Capture.UnknownLink + f.Capture.ShortLinkHdr
		if n == 0 && f.Encode.Truncated == 0 && f.Encode.Skipped == 0 {
			continue
		}
		noted++
		skipped, truncated = skipped+int64(n)+int64(f.Encode.Skipped), truncated+int64(f.Encode.Truncated)
		if n > 0 || f.Encode.Truncated > 0 {
			fmt.Fprintf(w, "%s: %d non-IP records skipped, %d unknown link type, %d short link headers, %d packets truncated before their kept bytes\n",
				f.Path, f.Capture.NonIP, f.Capture.UnknownLink, f.Capture.ShortLinkHdr, f.Encode.Truncated)
		}
		if f.Encode.Skipped > 0 {
			fmt.Fprintf(w, "%s: %d packets left out by the netssm layout (not TCP or UDP, or IP fragments)\n", f.Path, f.Encode.Skipped)
		}
	}
	if noted > 0 {
		fmt.Fprintf(w, "%d of %d files had records skipped (%d in all) or packets truncated (%d)\n", noted, len(files), skipped, truncated)
	}
}

// setAddrTable applies --addr-table to a flow-layout spec: 0 is spec
// version 2, which has no address table.
func setAddrTable(c *cli.Context, spec *tokenizer.Spec) error {
	if !c.IsSet("addr-table") {
		return nil
	}
	n := c.Int("addr-table")
	switch {
	case spec.Layout != tokenizer.LayoutFlow:
		return usagef("--addr-table is for the flow layout only")
	case n < 0 || n > 1024:
		return usagef("--addr-table %d: want 0..1024", n)
	case n == 0:
		spec.Version, spec.AddrTable = 2, 0
	default:
		spec.AddrTable = n
	}
	return nil
}

// specFromFlags builds a tokenizer spec from the --layout, --timing, --checksums and
// --payload flags (shared by commands that tokenize).
func specFromFlags(layout, timing, payload, checksums string) (tokenizer.Spec, error) {
	var spec tokenizer.Spec
	switch layout {
	case "v1":
		spec = tokenizer.DefaultSpec()
	case "flow":
		spec = tokenizer.FlowSpec()
	case "netssm", "paper":
		return tokenizer.NetSSMSpec(""), nil // the link type is read from the captures
	default:
		return spec, usagef("--layout %q: want v1, flow or netssm", layout)
	}
	switch timing {
	case "":
	case "on":
		spec.Timing = true
	case "off":
		spec.Timing = false
	default:
		return spec, usagef("--timing %q: want on or off", timing)
	}
	switch checksums {
	case "":
	case tokenizer.ChecksumsZero, tokenizer.ChecksumsKeep:
		spec.Checksums = checksums
	default:
		return spec, usagef("--checksums %q: want zero or keep", checksums)
	}
	for _, kv := range strings.Split(payload, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || err != nil || n < 0 || n > 65535 {
			return spec, usagef("--payload %q: want proto=N with N in 0..65535, e.g. tcp=0,udp=12", kv)
		}
		switch strings.TrimSpace(k) {
		case "tcp":
			spec.Payload.TCP = n
		case "udp":
			spec.Payload.UDP = n
		case "icmp":
			spec.Payload.ICMP = n
		case "other":
			spec.Payload.Other = n
		default:
			return spec, usagef("--payload: unknown protocol %q (tcp, udp, icmp, other)", k)
		}
	}
	if err := spec.Validate(); err != nil {
		return spec, usagef("%v", err)
	}
	return spec, nil
}
