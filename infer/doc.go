// Package infer owns generation: it runs a model's prefill graph once for the
// prompt, forks the resulting recurrent state into every slot of a batch, and
// then runs the step graph one token per sequence, keeping each sequence's
// conv and SSM state, its packet-grammar state, its sampler history and its
// random stream. Tokens are assembled into packets as they are produced and
// handed to a Sink, which writes one pcap per trace; memory is constant in
// the number of generated tokens.
//
// It owns the generation loop, the trace bookkeeping (which trace runs in which
// slot, when it stops), timestamps, sharding and the per-trace output files.
// It does not own the token format (package tokenizer: vocabulary, grammar),
// the pcap record layout and packet repair (package pcapout), the graphs
// (packages model and export) or the samplers (infer/sampling); it reaches them
// through the small interfaces in this package (Model, Batch, Grammar,
// PacketWriter), so the loop is tested with a Markov model written in Go.
//
// # Determinism
//
// A job is a list of trace indices 0…K−1. Trace t samples with
// sampling.TraceRNG(seed, t) and jitters its timestamps with a second stream
// derived from the same pair, so its tokens depend only on (seed, t, prompt,
// model, settings): not on the batch size, the slot it lands in, or the shard.
// `--shard i/n` runs the traces t ≡ i (mod n) (strided, so shards stay balanced
// for any K); the union of the n shards' files is the unsharded job's files,
// byte for byte. With an ONNX model this also needs each sequence's logits
// to be bit-identical whatever the batch around it: ONNX Runtime's CPU kernels
// give that for the Mamba-2 step graph as long as every buffer has the same
// alignment, so the ONNX batch allocates its tensors 64-byte aligned
// (TestMamba2RowsDoNotDependOnBatchSize). Other execution providers (CUDA)
// promise no such thing: there, same seed and batch size give the same files,
// other batch sizes may diverge after a near-tie.
//
// # Stopping
//
// Each trace ends at the first of: `<eos>`, Limits.Packets complete packets,
// Limits.Tokens generated tokens, or a packet whose time from the trace start
// exceeds Limits.Duration. A packet is complete when the next `<pkt>` or
// `<eos>` is sampled; when a token or duration limit cuts a packet short, it is
// kept only if the grammar says it could end there (or when decoding is
// unconstrained), else it is counted in Stats.Truncated. A slot whose trace
// ends starts the next trace index of the job at once. Once no trace is left
// to start and at most half the slots are busy, the traces still running
// move into a batch of their number (Batch.Save, then Load; their rows are
// bit-identical in any batch), so the longest traces of a job do not step
// idle rows to their end.
//
// # Models
//
// OpenBundle verifies a bundle (package export) and returns a Bundle whose
// Model is an ONNXModel: graphs have static shapes, so the step graph is
// built for the batch size asked for (model.NewStepGraph with the bundle's
// parameters as initializers; the bundle's own step.onnx is the batch it was
// exported with) and the prompt runs once through the chunked prefill graph
// built for its length. The batch keeps every state tensor twice, 64-byte
// aligned, and swaps input and output after each step: nothing is allocated,
// copied or grown between steps, so memory is constant in generated length
// (TestONNXMemoryConstantInGeneratedLength).
//
// # Errors
//
// Errors are returned, wrapped with the trace and file they concern; nothing
// panics across the package boundary. When a pcap cannot be written (a full
// disk), no file is left under the trace's name: what it holds is cut back to
// its last complete packet and kept as NAME.partial (or removed when no
// packet made it), the other traces in progress are discarded, and the error
// names the .partial file and says how many packets it holds.
package infer
