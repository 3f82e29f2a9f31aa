package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/internal/progress"
	"github.com/netssm/netssm/ort"
)

func init() {
	register(&cli.Command{
		Name:  "setup",
		Usage: "fetch ONNX Runtime " + ort.Version + " (and the CUDA provider) into the user cache via npm",
		Description: "Example:\n   netssm-cli setup            # CPU library\n   netssm-cli setup --ep cuda  # also the CUDA 13 provider\n\n" +
			"Runs `npm pack`, checks each tarball against the registry's integrity hash and\n" +
			"installs the libraries into $XDG_CACHE_HOME/netssm/ort/" + ort.Version + " atomically,\n" +
			"under a lock, so concurrent runs are safe. With --ep cuda it also lists the\n" +
			"CUDA libraries this machine still lacks.",
		Flags: []cli.Flag{epFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("setup takes no arguments, got %q", c.Args().Slice())
			}
			if err := checkEP(c); err != nil {
				return err
			}
			res, err := ort.Setup(c.Context, ort.SetupOptions{EP: c.String("ep"), Progress: progress.Enabled()})
			if err != nil {
				return err
			}
			state := "already installed"
			if len(res.Installed) > 0 {
				state = "installed " + strings.Join(res.Installed, ", ")
			}
			fmt.Printf("ONNX Runtime %s: %s (%s)\n", ort.Version, res.LibPath, state)
			if c.String("ep") == "cuda" {
				fmt.Printf("CUDA provider: %s\n", res.ProviderPath)
				if len(res.MissingCUDA) > 0 {
					fmt.Printf("missing CUDA libraries: %s (install CUDA 13 + cuDNN 9, or add their directories to LD_LIBRARY_PATH)\n", strings.Join(res.MissingCUDA, ", "))
				} else {
					fmt.Println("all CUDA libraries the provider needs were found")
				}
			}
			return nil
		},
	})
}
