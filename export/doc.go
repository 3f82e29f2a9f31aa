// Package export owns netssm's model bundle: the directory that carries a
// trained Mamba-2 model from training to generation. A bundle holds
//
//	model.json    the Manifest: format version, model config, parameter count,
//	              tokenizer spec and timing tables (opaque JSON owned by the
//	              tokenizer package), labels, provenance, the ONNX Runtime
//	              version, the graphs' batch and length, and the sha256 and
//	              size of every other file
//	prefill.onnx  prompt (B, L) + states → last logits (B, V) + states
//	step.onnx     one token per sequence (B) + states → logits (B, V) + states
//	weights.bin   ONNX external data shared by both graphs, present only when
//	              the parameters exceed Options.ExternalDataThreshold
//
// Write builds the bundle in a temporary directory beside the destination
// and renames it into place, so a bundle directory is either complete or
// absent. Load reads model.json, checks every file's size and sha256, and
// checks each graph's inputs, outputs and parameter initializers against the
// config, refusing a mismatched bundle with an error that names the file.
//
// Readers get a graph's bytes with Bundle.Graph (external weights inlined,
// which caps a usable model at protobuf's 2 GB) and the parameters with
// Bundle.Params, from which package infer rebuilds step graphs for any batch
// size.
//
// It owns the bundle's layout and integrity only: the graphs come from
// package model, running them is package ort's (and infer's), the tokenizer
// spec and timing tables are stored verbatim and interpreted elsewhere.
package export
