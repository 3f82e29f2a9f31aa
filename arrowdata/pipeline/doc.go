// Package pipeline owns the data stage's whole-file operations behind
// `netssm-cli tokenize`, `detokenize` and `dataset info`: capture files →
// dataset (reading with package capture, optional Crypto-PAn, encoding with
// package tokenizer, writing with package arrowdata), dataset → pcaps (with
// package pcapout), and dataset statistics. Command files stay thin; this
// package must not parse flags or print for the user.
package pipeline
