// Package progress owns netssm's progress bars: one constructor that draws a
// bar (github.com/schollz/progressbar) on standard error when it is a
// terminal, and stays silent otherwise (pipes, CI, log files), so commands never
// need to ask.
package progress

import (
	"io"
	"os"
	"sync/atomic"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

var quiet atomic.Bool

// SetQuiet turns every bar off (the --quiet flag).
func SetQuiet(q bool) { quiet.Store(q) }

// Enabled reports whether bars are drawn: stderr is a terminal and not quiet.
func Enabled() bool {
	return !quiet.Load() && term.IsTerminal(int(os.Stderr.Fd()))
}

// Bar is a progress bar; the zero-cost silent bar when not Enabled.
type Bar struct{ b *progressbar.ProgressBar }

// New returns a bar counting to max (-1: unknown, shows a spinner) in units.
func New(max int64, description, unit string) *Bar {
	if !Enabled() {
		return &Bar{}
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(unit),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionFullWidth(),
	}
	return &Bar{b: progressbar.NewOptions64(max, opts...)}
}

// NewBytes returns a bar counting bytes (max -1 when the total is unknown).
func NewBytes(max int64, description string) *Bar {
	if !Enabled() {
		return &Bar{}
	}
	return &Bar{b: progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionFullWidth(),
	)}
}

// Add advances the bar by n.
func (b *Bar) Add(n int64) {
	if b.b != nil {
		b.b.Add64(n)
	}
}

// Set moves the bar to n.
func (b *Bar) Set(n int64) {
	if b.b != nil {
		b.b.Set64(n)
	}
}

// Describe changes the text before the bar (e.g. "step 120 loss 2.31").
func (b *Bar) Describe(s string) {
	if b.b != nil {
		b.b.Describe(s)
	}
}

// Finish completes and clears the bar.
func (b *Bar) Finish() {
	if b.b != nil {
		b.b.Finish()
	}
}

// Writer wraps w so that bytes passing through advance the bar.
func (b *Bar) Writer(w io.Writer) io.Writer {
	if b.b == nil {
		return w
	}
	return io.MultiWriter(w, b.b)
}
