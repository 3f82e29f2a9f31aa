package main

import (
	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/internal/progress"
	"github.com/netssm/netssm/ort"
)

// initORT loads ONNX Runtime for a command, provisioning it through npm (with
// a progress bar on a terminal) when it is nowhere to be found.
func initORT(c *cli.Context) (ort.Info, error) {
	return ort.Init(ort.InitOptions{
		LibPath:   c.String("ort-lib"),
		AutoSetup: true,
		Progress:  progress.Enabled(),
	})
}

// epFlag is the --ep flag shared by every command that runs graphs.
func epFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "ep", Value: "cpu", Usage: "execution provider: cpu | cuda"}
}

// threadsFlag is --threads, ONNX Runtime's intra-op threads.
func threadsFlag() *cli.IntFlag {
	return &cli.IntFlag{Name: "threads", Usage: "CPU threads (0: one per core this process may use)"}
}

// ioBindingFlag is --io-binding, for the commands whose loops carry
// tensors from one Run to the next.
func ioBindingFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "io-binding", Value: "auto", Usage: "keep carried tensors (training: parameters and moments; sampling: recurrent states) in the provider's memory between Runs: auto (under --ep cuda) | on | off"}
}

// checkEP validates --ep (and --io-binding where the command has it) as a
// usage error.
func checkEP(c *cli.Context) error {
	switch c.String("ep") {
	case "cpu", "cuda":
	default:
		return usagef("--ep must be cpu or cuda, not %q", c.String("ep"))
	}
	if err := ort.ParseIOBinding(c.String("io-binding")); err != nil {
		return usagef("%v", err)
	}
	return nil
}
