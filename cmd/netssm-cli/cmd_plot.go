package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"gonum.org/v1/plot/vg"

	"github.com/netssm/netssm/eval"
	"github.com/netssm/netssm/plots"
)

// plotCommand is `netssm-cli plot`: single figures redrawn from data netssm
// wrote earlier. Its subcommands are assembled from several files: a file
// that adds one calls addPlotSubcommand from its init, e.g.
//
//	func init() { addPlotSubcommand(&cli.Command{Name: "loss", ...}) }
//
// (plotCommand is a package-level value, so it exists before any init runs,
// whatever the file order.) Use plotFlags and plotOptions for the size and
// format flags so that every subcommand takes the same ones.
var plotCommand = &cli.Command{
	Name:  "plot",
	Usage: "draw single figures from a report's data (see subcommands)",
	Description: "Example:\n   netssm-cli plot figure --out iat --width 7 report inter_arrival_cdf\n\n" +
		"Figures are PNG (300 dpi) and SVG, sized for a paper column (3.5 in) unless\n" +
		"--width/--height say otherwise. Flags go before the arguments.",
}

// addPlotSubcommand adds a subcommand to `netssm-cli plot`.
func addPlotSubcommand(c *cli.Command) {
	plotCommand.Subcommands = append(plotCommand.Subcommands, c)
	sort.Slice(plotCommand.Subcommands, func(i, j int) bool {
		return plotCommand.Subcommands[i].Name < plotCommand.Subcommands[j].Name
	})
}

// plotFlags are the drawing flags every plot subcommand shares.
func plotFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "out", Usage: "output file stem (default: the figure name in the current directory)"},
		&cli.Float64Flag{Name: "width", Value: 3.5, Usage: "width in inches"},
		&cli.Float64Flag{Name: "height", Value: 2.4, Usage: "height in inches"},
		&cli.IntFlag{Name: "dpi", Value: 300, Usage: "PNG resolution"},
		&cli.StringFlag{Name: "format", Value: "png,svg", Usage: "comma-separated: png, svg"},
	}
}

// plotOptions reads plotFlags.
func plotOptions(c *cli.Context) (plots.Options, error) {
	o := plots.Options{Width: vg.Length(c.Float64("width")) * vg.Inch, Height: vg.Length(c.Float64("height")) * vg.Inch, DPI: c.Int("dpi")}
	if c.Float64("width") <= 0 || c.Float64("height") <= 0 || c.Int("dpi") <= 0 {
		return o, usagef("--width, --height and --dpi must be positive")
	}
	for _, f := range strings.Split(c.String("format"), ",") {
		f = strings.TrimSpace(f)
		if f != "png" && f != "svg" {
			return o, usagef("--format: %q is not png or svg", f)
		}
		o.Formats = append(o.Formats, f)
	}
	return o, nil
}

// outStem is --out, or name in the current directory.
func outStem(c *cli.Context, name string) string {
	if s := c.String("out"); s != "" {
		return strings.TrimSuffix(strings.TrimSuffix(s, ".png"), ".svg")
	}
	return strings.NewReplacer("/", "_", string(filepath.Separator), "_").Replace(name)
}

func init() {
	register(plotCommand)
	addPlotSubcommand(&cli.Command{
		Name:        "list",
		Usage:       "list the figures a report holds data for",
		ArgsUsage:   "REPORT_DIR",
		Description: "Example:\n   netssm-cli plot list report",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("plot list takes one argument, REPORT_DIR")
			}
			figs, err := plots.ReadFigures(figuresPath(c.Args().First()))
			if err != nil {
				return fmt.Errorf("%w (is %s a report written by `netssm-cli eval`?)", err, c.Args().First())
			}
			width := 0
			for _, f := range figs {
				width = max(width, len(f.Name))
			}
			for _, f := range figs {
				fmt.Printf("%-*s  %-5s  %s\n", width, f.Name, f.Kind, f.Title)
			}
			return nil
		},
	})
	addPlotSubcommand(&cli.Command{
		Name:      "figure",
		Usage:     "redraw one figure of a report",
		ArgsUsage: "REPORT_DIR NAME",
		Description: "Example:\n   netssm-cli plot figure --out fig3 --title \"\" report wire_len_cdf\n\n" +
			"NAME is one of the names `netssm-cli plot list REPORT_DIR` prints.",
		Flags: append(plotFlags(),
			&cli.StringFlag{Name: "title", Usage: "replace the title (\"\" for none)"},
			&cli.BoolFlag{Name: "logx", Usage: "logarithmic x axis (default: as in the report)"},
			&cli.BoolFlag{Name: "logy", Usage: "logarithmic y axis (default: as in the report)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("plot figure takes two arguments, REPORT_DIR NAME (flags go before them)")
			}
			opts, err := plotOptions(c)
			if err != nil {
				return err
			}
			figs, err := plots.ReadFigures(figuresPath(c.Args().Get(0)))
			if err != nil {
				return fmt.Errorf("%w (is %s a report written by `netssm-cli eval`?)", err, c.Args().Get(0))
			}
			name := c.Args().Get(1)
			var names []string
			for _, f := range figs {
				names = append(names, f.Name)
				if f.Name != name {
					continue
				}
				if c.IsSet("title") {
					f.Title = c.String("title")
				}
				if c.IsSet("logx") {
					f.LogX = c.Bool("logx")
				}
				if c.IsSet("logy") {
					f.LogY = c.Bool("logy")
				}
				stem := outStem(c, name)
				if err := plots.Save(f, stem, opts); err != nil {
					return err
				}
				fmt.Printf("wrote %s.{%s}\n", stem, strings.Join(opts.Formats, ","))
				return nil
			}
			return usagef("report has no figure %q; it has %s", name, strings.Join(names, ", "))
		},
	})
	addPlotSubcommand(&cli.Command{
		Name:      "divergence",
		Usage:     "bar chart of each metric's divergence, real vs synthetic, from metrics.json",
		ArgsUsage: "REPORT_DIR",
		Description: "Example:\n   netssm-cli plot divergence --measure hellinger --label video_call report\n\n" +
			"One bar per metric (wire length, ports, flow sizes, …) for the pooled traces or\n" +
			"one label; --measure is jsd, tv or hellinger.",
		Flags: append(plotFlags(),
			&cli.StringFlag{Name: "measure", Value: "jsd", Usage: "jsd | tv | hellinger"},
			&cli.StringFlag{Name: "label", Usage: "one label instead of all pooled"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("plot divergence takes one argument, REPORT_DIR (flags go before it)")
			}
			opts, err := plotOptions(c)
			if err != nil {
				return err
			}
			measure := c.String("measure")
			if measure != "jsd" && measure != "tv" && measure != "hellinger" {
				return usagef("--measure %q: want jsd, tv or hellinger", measure)
			}
			r, err := eval.ReadReport(c.Args().First())
			if err != nil {
				return err
			}
			g, group := r.Fidelity.Pooled, "pooled"
			if l := c.String("label"); l != "" {
				var ok bool
				if g, ok = r.Fidelity.PerLabel[l]; !ok {
					var have []string
					for k := range r.Fidelity.PerLabel {
						have = append(have, k)
					}
					sort.Strings(have)
					return usagef("--label %q: the report compares labels %s", l, strings.Join(have, ", "))
				}
				group = l
			}
			f := eval.DivergenceFigure(g, measure, group)
			stem := outStem(c, f.Name)
			if err := plots.Save(f, stem, opts); err != nil {
				return err
			}
			fmt.Printf("wrote %s.{%s}\n", stem, strings.Join(opts.Formats, ","))
			return nil
		},
	})
}

func figuresPath(reportDir string) string { return filepath.Join(reportDir, "plots", "figures.json") }
