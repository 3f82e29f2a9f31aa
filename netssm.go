// Package netssm is the root of netssm, a generator of realistic raw network
// traffic: it tokenizes packet captures (packages capture, tokenizer,
// arrowdata), trains a Mamba-2 state-space model on the packet bytes inside
// ONNX Runtime from graphs it builds itself (graph, model, train), exports
// the model (export), generates new PCAPs of any length (infer) and measures
// how close they are to real traffic (eval, plots). The command is
// cmd/netssm-cli.
//
// This package itself only carries the example captures of testdata/captures
// (made by testdata/make_captures.sh from real programs on loopback and in
// network namespaces), embedded so that `netssm-cli demo` runs from any
// directory.
package netssm

import "embed"

// DemoCaptures holds testdata/captures/<label>/<file>.pcap[ng].
//
//go:embed testdata/captures
var DemoCaptures embed.FS

// DemoCapturesRoot is the directory of DemoCaptures that holds the labels.
const DemoCapturesRoot = "testdata/captures"
