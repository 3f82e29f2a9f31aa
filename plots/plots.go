// Package plots owns netssm's figures: empirical CDFs, grouped bar charts and
// line plots (training loss curves, packets over time), drawn with gonum/plot
// at paper column width (3.5 in) with readable fonts, and written as PNG
// (300 dpi) and SVG side by side, each atomically (internal/atomicfile).
//
// A figure is data first: a Figure value holds everything needed to draw it
// and serialises to JSON, so a report can keep the data behind its plots and
// `netssm-cli plot` can redraw one later with other options. Build figures
// with CDFFigure, BarsFigure and LinesFigure (or the one-call helpers CDF, Bars
// and Lines, which also save), draw them with Save.
//
// This package computes no metrics and reads no captures; it must not import
// other netssm packages except internal ones.
package plots

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/netssm/netssm/internal/atomicfile"
)

// Kind says how a Figure is drawn.
type Kind string

const (
	// KindCDF draws each series as an empirical CDF (a step line, Y in [0,1]).
	KindCDF Kind = "cdf"
	// KindBars draws grouped horizontal bars, one group per category.
	KindBars Kind = "bars"
	// KindLines draws each series as a polyline through (X, Y).
	KindLines Kind = "lines"
)

// Series is one named curve or bar group member. For KindBars, Y holds one
// value per category and X is unused.
type Series struct {
	Name string    `json:"name"`
	X    []float64 `json:"x,omitempty"`
	Y    []float64 `json:"y"`
	// Points draws a lines figure's series as markers, not joined: a
	// measurement of its own beside the curves (KindLines only).
	Points bool `json:"points,omitempty"`
}

// Figure is the data behind one plot, enough to redraw it.
type Figure struct {
	Name   string `json:"name"` // file stem: Save writes Name.png and Name.svg
	Kind   Kind   `json:"kind"`
	Title  string `json:"title"`
	XLabel string `json:"x_label"` // with unit, e.g. "wire length (bytes)"
	YLabel string `json:"y_label"`
	LogX   bool   `json:"log_x,omitempty"`
	LogY   bool   `json:"log_y,omitempty"`
	// XMin and XMax, when set, bound the x axis (curves are clipped there).
	XMin       *float64 `json:"x_min,omitempty"`
	XMax       *float64 `json:"x_max,omitempty"`
	Categories []string `json:"categories,omitempty"` // KindBars only
	Series     []Series `json:"series"`
	Caption    string   `json:"caption,omitempty"` // what the figure shows, for reports
}

// Options set the drawing size. The zero value means paper column width.
type Options struct {
	Width, Height vg.Length // default 3.5 in × 2.4 in
	DPI           int       // PNG resolution, default 300
	Formats       []string  // subset of "png", "svg"; default both
}

func (o Options) withDefaults() Options {
	if o.Width <= 0 {
		o.Width = 3.5 * vg.Inch
	}
	if o.Height <= 0 {
		o.Height = 2.4 * vg.Inch
	}
	if o.DPI <= 0 {
		o.DPI = 300
	}
	if len(o.Formats) == 0 {
		o.Formats = []string{"png", "svg"}
	}
	return o
}

// maxCDFPoints bounds the points kept per CDF series, so figures stay small
// and fast to draw however many samples went in.
const maxCDFPoints = 400

// CDFFigure builds an empirical-CDF figure from raw samples, one series per
// named sample set. Samples are not modified. Each series keeps at most
// maxCDFPoints (value, cumulative share) points, evenly spaced in rank.
func CDFFigure(name, title, xLabel string, logX bool, samples map[string][]float64, order ...string) Figure {
	if len(order) == 0 {
		for k := range samples {
			order = append(order, k)
		}
		sort.Strings(order)
	}
	f := Figure{Name: name, Kind: KindCDF, Title: title, XLabel: xLabel, YLabel: "CDF", LogX: logX}
	for _, k := range order {
		f.Series = append(f.Series, ECDF(k, samples[k], maxCDFPoints))
	}
	return f
}

// ECDF returns the empirical CDF of x as at most maxPoints points
// (x sorted ascending, y = share of samples ≤ x). NaNs are dropped.
func ECDF(name string, x []float64, maxPoints int) Series {
	s := make([]float64, 0, len(x))
	for _, v := range x {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	slices.Sort(s)
	n := len(s)
	out := Series{Name: name}
	if n == 0 {
		return out
	}
	if maxPoints < 2 {
		maxPoints = 2
	}
	step := 1
	if n > maxPoints {
		step = (n + maxPoints - 1) / maxPoints
	}
	for i := step - 1; i < n; i += step {
		// Last index of a run of equal values gives the CDF at that value.
		j := i
		for j+1 < n && s[j+1] == s[i] {
			j++
		}
		if len(out.X) > 0 && out.X[len(out.X)-1] == s[j] {
			continue
		}
		out.X = append(out.X, s[j])
		out.Y = append(out.Y, float64(j+1)/float64(n))
	}
	if out.X[len(out.X)-1] != s[n-1] {
		out.X = append(out.X, s[n-1])
		out.Y = append(out.Y, 1)
	}
	return out
}

// BarsFigure builds a grouped bar chart: categories along the vertical axis,
// one bar per series in each group.
func BarsFigure(name, title, valueLabel string, categories []string, series ...Series) Figure {
	return Figure{Name: name, Kind: KindBars, Title: title, XLabel: valueLabel, Categories: categories, Series: series}
}

// LinesFigure builds a line plot (e.g. loss against step).
func LinesFigure(name, title, xLabel, yLabel string, logY bool, series ...Series) Figure {
	return Figure{Name: name, Kind: KindLines, Title: title, XLabel: xLabel, YLabel: yLabel, LogY: logY, Series: series}
}

// CDF builds a CDF figure from samples and saves it as base.png and base.svg.
func CDF(base, title, xLabel string, logX bool, samples map[string][]float64, order ...string) error {
	f := CDFFigure(stem(base), title, xLabel, logX, samples, order...)
	return Save(f, base, Options{})
}

// Bars builds a grouped bar chart and saves it as base.png and base.svg.
func Bars(base, title, valueLabel string, categories []string, series ...Series) error {
	return Save(BarsFigure(stem(base), title, valueLabel, categories, series...), base, Options{})
}

// Lines builds a line plot and saves it as base.png and base.svg.
func Lines(base, title, xLabel, yLabel string, logY bool, series ...Series) error {
	return Save(LinesFigure(stem(base), title, xLabel, yLabel, logY, series...), base, Options{})
}

func stem(base string) string {
	for i := len(base) - 1; i >= 0; i-- {
		if base[i] == '/' || base[i] == os.PathSeparator {
			return base[i+1:]
		}
	}
	return base
}

// Save draws f and writes base.png and base.svg (or the formats in opts),
// each atomically.
func Save(f Figure, base string, opts Options) (err error) {
	// gonum/plot panics on some degenerate data; callers get an error.
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("drawing figure %q: %v", f.Name, x)
		}
	}()
	opts = opts.withDefaults()
	p, err := Draw(f)
	if err != nil {
		return fmt.Errorf("figure %q: %w", f.Name, err)
	}
	for _, format := range opts.Formats {
		dest := base + "." + format
		var wt io.WriterTo
		switch format {
		case "png":
			c := vgimg.NewWith(vgimg.UseWH(opts.Width, opts.Height), vgimg.UseDPI(opts.DPI))
			render(p, f, draw.New(c))
			wt = vgimg.PngCanvas{Canvas: c}
		case "svg":
			c := vgsvg.New(opts.Width, opts.Height)
			render(p, f, draw.New(c))
			wt = c
		default:
			return fmt.Errorf("figure %q: unknown format %q (want png or svg)", f.Name, format)
		}
		if err := atomicfile.Write(dest, func(w io.Writer) error {
			_, err := wt.WriteTo(w)
			return err
		}); err != nil {
			return fmt.Errorf("writing figure %q: %w", f.Name, err)
		}
	}
	return nil
}

// render draws p (made by Draw from f) on dc. gonum/plot reserves room for a
// centred x-axis label at the arithmetic middle of the axis range, which on a
// log axis lies near its right end and squeezes the data area; so on log x
// axes the label is drawn here instead, centred under the data area.
func render(p *plot.Plot, f Figure, dc draw.Canvas) {
	if !f.LogX || f.XLabel == "" {
		p.Draw(dc)
		return
	}
	p.X.Label.Text = " " // keeps the label's height reserved
	p.Draw(dc)
	p.X.Label.Text = f.XLabel
	st := p.X.Label.TextStyle
	da := p.DataCanvas(dc)
	dc.FillText(st, vg.Point{X: da.Center().X, Y: dc.Min.Y + st.FontExtents().Descent}, f.XLabel)
}

// Font sizes for a 3.5 in wide figure (points).
const (
	titleSize  = 8.5
	labelSize  = 7.5
	tickSize   = 6.5
	legendSize = 6.5
)

// Draw turns a Figure into a gonum plot, styled for paper column width.
// Prefer Save, which also places a log x axis's label properly (see render).
func Draw(f Figure) (*plot.Plot, error) {
	if len(f.Series) == 0 {
		return nil, errors.New("no series to draw")
	}
	p := plot.New()
	p.Title.Text = f.Title
	p.Title.TextStyle.Font.Size = titleSize
	p.X.Label.Text = f.XLabel
	p.Y.Label.Text = f.YLabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Tick.Marker = plainTicks{}
		a.Label.TextStyle.Font.Size = labelSize
		a.Tick.Label.Font.Size = tickSize
		a.Padding = vg.Points(2)
	}
	p.Legend.TextStyle.Font.Size = legendSize
	p.Legend.ThumbnailWidth = vg.Points(14)
	// Keep the legend inside the data area, off the axes.
	p.Legend.XOffs = -vg.Points(4)
	p.Add(plotter.NewGrid())

	switch f.Kind {
	case KindCDF, KindLines:
		return p, drawLines(p, f)
	case KindBars:
		return p, drawBars(p, f)
	default:
		return nil, fmt.Errorf("unknown figure kind %q", f.Kind)
	}
}

// seriesStyle gives series i a colour and dash that stay distinguishable in
// greyscale print: black solid, red dashed, blue dotted, …
func seriesStyle(i int) (color.Color, []vg.Length) {
	colors := []color.Color{
		color.RGBA{0, 0, 0, 255},
		color.RGBA{213, 43, 30, 255},
		color.RGBA{31, 97, 181, 255},
		color.RGBA{46, 139, 87, 255},
		color.RGBA{148, 87, 166, 255},
		color.RGBA{230, 145, 0, 255},
	}
	dashes := [][]vg.Length{nil, {vg.Points(4), vg.Points(2)}, {vg.Points(1), vg.Points(1.5)}, {vg.Points(5), vg.Points(1.5), vg.Points(1), vg.Points(1.5)}}
	return colors[i%len(colors)], dashes[i%len(dashes)]
}

func drawLines(p *plot.Plot, f Figure) error {
	if f.Kind == KindCDF {
		p.Y.Min, p.Y.Max = 0, 1
		p.Legend.Top = false
	} else {
		p.Legend.Top = true
	}
	// Log axes cannot show values ≤ 0: clamp them to half the smallest
	// positive value so that, e.g., zero inter-arrival times stay visible.
	floorX, floorY := positiveFloor(f.Series, true), positiveFloor(f.Series, false)
	drawn := 0
	for i, s := range f.Series {
		pts := make(plotter.XYs, 0, len(s.Y))
		for j, y := range s.Y {
			x := float64(j)
			if j < len(s.X) {
				x = s.X[j]
			}
			if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
				continue
			}
			if f.LogX && x <= 0 {
				x = floorX
			}
			if f.LogY && y <= 0 {
				y = floorY
			}
			pts = append(pts, plotter.XY{X: x, Y: y})
		}
		if len(pts) == 0 {
			continue
		}
		c, d := seriesStyle(i)
		if s.Points && f.Kind == KindLines {
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return fmt.Errorf("series %q: %w", s.Name, err)
			}
			sc.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(3.5), Shape: pointShape(i)}
			p.Add(sc)
			if s.Name != "" {
				p.Legend.Add(s.Name, sc)
			}
			drawn++
			continue
		}
		var l *plotter.Line
		var err error
		if f.Kind == KindCDF {
			l, err = plotter.NewLine(cdfSteps(pts))
		} else {
			l, err = plotter.NewLine(pts)
		}
		if err != nil {
			return fmt.Errorf("series %q: %w", s.Name, err)
		}
		l.Color, l.Dashes, l.Width = c, d, vg.Points(1)
		p.Add(l)
		if s.Name != "" {
			p.Legend.Add(s.Name, l)
		}
		drawn++
	}
	if drawn == 0 {
		return errors.New("every series is empty")
	}
	if f.LogX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = decadeTicks{}
	}
	if f.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = decadeTicks{}
	}
	if f.XMin != nil {
		p.X.Min = *f.XMin
	}
	if f.XMax != nil {
		p.X.Max = *f.XMax
	}
	if f.Kind == KindCDF {
		p.Legend.YOffs = vg.Points(4)
	} else {
		p.Legend.YOffs = -vg.Points(2)
	}
	return nil
}

// pointShape is the marker of the i-th series drawn as points.
func pointShape(i int) draw.GlyphDrawer {
	shapes := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{}}
	return shapes[i%len(shapes)]
}

// plainTicks are gonum's default ticks labelled without trailing zeros and
// with SI suffixes from a thousand up ("500", "0.25", "3M", "1.5k" rather
// than "500.00", "0.25", "3e+06", "1500").
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = tickLabel(ticks[i].Value)
		}
	}
	return ticks
}

// tickLabel writes v with an SI suffix (k, M, G) from a thousand up.
func tickLabel(v float64) string {
	for _, u := range []struct {
		scale  float64
		suffix string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if math.Abs(v) >= u.scale {
			return strconv.FormatFloat(v/u.scale, 'g', 4, 64) + u.suffix
		}
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// decadeTicks marks a log axis: labelled ticks at powers of ten (every
// second or third one when many decades would crowd a column-wide figure),
// unlabelled ones at 2–9 times them.
type decadeTicks struct{}

func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= lo {
		return nil
	}
	e0, e1 := int(math.Floor(math.Log10(lo))), int(math.Ceil(math.Log10(hi)))
	every := 1
	switch n := e1 - e0; {
	case n > 12:
		every = 3
	case n > 6:
		every = 2
	}
	var ticks []plot.Tick
	for e := e0; e <= e1; e++ {
		v := math.Pow10(e)
		if v >= lo && v <= hi {
			t := plot.Tick{Value: v}
			if ((e%every)+every)%every == 0 {
				t.Label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			ticks = append(ticks, t)
		}
		for m := 2; m < 10; m++ {
			if mv := float64(m) * v; mv >= lo && mv <= hi {
				ticks = append(ticks, plot.Tick{Value: mv})
			}
		}
	}
	return ticks
}

// cdfSteps turns CDF points into a right-continuous staircase starting at 0.
func cdfSteps(pts plotter.XYs) plotter.XYs {
	out := make(plotter.XYs, 0, 2*len(pts)+1)
	out = append(out, plotter.XY{X: pts[0].X, Y: 0})
	prevY := 0.0
	for _, pt := range pts {
		out = append(out, plotter.XY{X: pt.X, Y: prevY}, pt)
		prevY = pt.Y
	}
	return out
}

func positiveFloor(series []Series, xAxis bool) float64 {
	m := math.Inf(1)
	for _, s := range series {
		vals := s.Y
		if xAxis {
			vals = s.X
		}
		for _, v := range vals {
			if v > 0 && v < m {
				m = v
			}
		}
	}
	if math.IsInf(m, 1) {
		return 1
	}
	return m / 2
}

func drawBars(p *plot.Plot, f Figure) error {
	n := len(f.Categories)
	if n == 0 {
		return errors.New("bar chart without categories")
	}
	k := len(f.Series)
	// Each group gets 0.8 of a category slot, split among the series.
	groupWidth := vg.Points(float64(min(9, 60/n+3)) * float64(k))
	barWidth := groupWidth / vg.Length(k)
	// Categories run top to bottom in the order given: the bar chart's
	// position 0 is at the bottom, so reverse.
	for i, s := range f.Series {
		if len(s.Y) != n {
			return fmt.Errorf("series %q has %d values for %d categories", s.Name, len(s.Y), n)
		}
		vals := make(plotter.Values, n)
		for j := range vals {
			vals[j] = s.Y[n-1-j]
		}
		b, err := plotter.NewBarChart(vals, barWidth)
		if err != nil {
			return fmt.Errorf("series %q: %w", s.Name, err)
		}
		b.Horizontal = true
		c, _ := seriesStyle(i)
		b.Color = c
		b.LineStyle.Width = 0
		// The first series' bar sits on top within its group.
		b.Offset = groupWidth/2 - barWidth*vg.Length(i) - barWidth/2
		p.Add(b)
		if s.Name != "" {
			p.Legend.Add(s.Name, b)
		}
	}
	names := make([]string, n)
	for j := range names {
		names[j] = f.Categories[n-1-j]
	}
	p.NominalY(names...)
	p.X.Min = 0
	p.Legend.Top = false
	return nil
}

// WriteFigures stores figures as JSON (one object keyed by figure name) at
// path, atomically. Reports keep it beside their plots.
func WriteFigures(path string, figs []Figure) error {
	m := make(map[string]Figure, len(figs))
	for _, f := range figs {
		if f.Name == "" {
			return fmt.Errorf("writing %s: figure without a name", path)
		}
		m[f.Name] = f
	}
	data, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return fmt.Errorf("encoding figures for %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, append(data, '\n'))
}

// ReadFigures loads figures written by WriteFigures, sorted by name.
func ReadFigures(path string) ([]Figure, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading figure data: %w", err)
	}
	var m map[string]Figure
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decoding figure data %s: %w", path, err)
	}
	out := make([]Figure, 0, len(m))
	for name, f := range m {
		f.Name = name
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
