// Command netssm-cli is netssm's user interface: one subcommand per pipeline
// stage (tokenize, train, export, sample, eval) plus set-up and inspection.
// Each subcommand lives in its own file and registers itself with register;
// this file owns the application, its global flags and the exit-code policy:
// 0 success, 1 failure (one line naming the cause), 2 usage error (with help).
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/internal/progress"
)

// version is netssm's version, overridden at link time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

var commands []*cli.Command

// register adds a subcommand; each command file calls it from init.
func register(c *cli.Command) { commands = append(commands, c) }

// usageError marks an error as the user's invocation being wrong (exit code 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// usagef returns a usage error; the command's help is printed before it.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func newApp() *cli.App {
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	for _, c := range commands {
		setUsageHandlers(c)
	}
	app := &cli.App{
		Name:    "netssm-cli",
		Usage:   "learn realistic network traffic from captures and generate new PCAPs",
		Version: version,
		Description: "netssm trains a Mamba-2 state-space model on raw packet bytes and generates\n" +
			"new traffic of any length. Start with `netssm-cli demo`.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ort-lib", Usage: "path to the ONNX Runtime shared library (default: $NETSSM_ORT_LIB, the user cache, a system or Python install)"},
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug | info | warn | error"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bars"},
		},
		Before: func(c *cli.Context) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return usagef("--log-level: %v", err)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
			progress.SetQuiet(c.Bool("quiet"))
			return nil
		},
		Commands:       commands,
		OnUsageError:   onUsageError,
		ExitErrHandler: func(*cli.Context, error) {}, // main decides exit codes
	}
	return app
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	if c.Command != nil && c.Command.Name != "" {
		_ = cli.ShowCommandHelp(c, c.Command.Name)
	} else {
		_ = cli.ShowAppHelp(c)
	}
	return usageError{err}
}

// wrapped marks commands whose Action already shows help on usage errors
// (newApp may run more than once in a process: the demo runs each stage).
var wrapped = map[*cli.Command]bool{}

func setUsageHandlers(c *cli.Command) {
	if c.OnUsageError == nil {
		c.OnUsageError = onUsageError
	}
	if action := c.Action; action != nil && !wrapped[c] {
		wrapped[c] = true
		c.Action = func(ctx *cli.Context) error {
			err := action(ctx)
			var ue usageError
			if errors.As(err, &ue) {
				_ = cli.ShowSubcommandHelp(ctx)
			}
			return err
		}
	}
	for _, s := range c.Subcommands {
		setUsageHandlers(s)
	}
}

func main() {
	stop := startCPUProfile(os.Getenv("NETSSM_CPUPROFILE"))
	code := run(os.Args)
	stop()
	os.Exit(code)
}

// startCPUProfile writes a Go CPU profile of the whole command to path (the
// NETSSM_CPUPROFILE environment variable; read it with go tool pprof) and
// returns what stops it; an empty path profiles nothing.
func startCPUProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		slog.Warn("not profiling", "path", path, "err", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// run executes the CLI and maps the outcome to an exit code.
func run(args []string) int {
	app := newApp()
	err := app.Run(interspersed(app, args))
	if err == nil {
		return 0
	}
	var ue usageError
	msg := err.Error()
	if errors.As(err, &ue) || strings.HasPrefix(msg, "Required flag") || strings.HasPrefix(msg, "No help topic for") {
		fmt.Fprintf(os.Stderr, "netssm-cli: usage: %v (see --help)\n", err)
		return 2
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		fmt.Fprintf(os.Stderr, "netssm-cli: %v\n", err)
		return ec.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "netssm-cli: %v\n", err)
	return 1
}
