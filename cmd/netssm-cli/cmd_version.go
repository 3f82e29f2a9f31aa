package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/netssm/netssm/ort"
)

func init() {
	register(&cli.Command{
		Name:        "version",
		Usage:       "print netssm's version, the ONNX Runtime in use and whether CUDA can be used",
		Description: "Example:\n   netssm-cli version\n   NETSSM_ORT_LIB=/opt/ort/libonnxruntime.so netssm-cli version",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("version takes no arguments")
			}
			fmt.Printf("netssm %s\n", version)
			info, err := initORT(c)
			if err != nil {
				return err
			}
			fmt.Printf("ONNX Runtime %s (%s, from %s)\n", info.Version, info.Path, info.Source)
			fmt.Printf("custom ops (CPU kernels of domain %s, for --kernels fused): %s\n", ort.FusedDomain, strings.Join(ort.FusedOps(), ", "))
			if err := ort.CUDAStatus(); err != nil {
				fmt.Printf("CUDA provider: not available: %v\n", err)
			} else {
				fmt.Println("CUDA provider: available")
			}
			return nil
		},
	})
}
