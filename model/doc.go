// Package model owns netssm's Mamba-2 language model as a specification:
// its configuration and presets, the parameter names, shapes and seeded
// initialisation, the ONNX graphs that compute it (training forward and loss,
// prefill, one decoding step) and a pure-Go float64 sequential reference used
// only as the tests' oracle. The math is written out in docs/mamba2.md
// (chunked SSD for whole windows, the recurrence for single steps).
//
// It builds graphs with package graph and never runs them: running is package
// ort's, the training loop is package train's (it consumes TrainLoss through
// its LossBuilder type), files on disk are package export's.
//
// # Graph inputs and outputs
//
// Token ids are the Int64 input "ids" ((B, L) for forward and prefill, (B)
// for step). Each layer i carries two recurrent states in the graph's float
// type: inputs "layers.i.conv_state" (B, conv_dim, W), the last W raw
// (pre-convolution) xBC columns, and "layers.i.ssm_state" (B, H, P, N); the
// graphs return their next values as "layers.i.conv_state.next" and
// "layers.i.ssm_state.next" (StateNames lists them). Forward outputs
// "logits" (B, L, V); prefill and step output the last position's "logits"
// (B, V). Parameters are graph inputs named as in ParamShapes unless the graph
// is serialised with graph.Initializers(Values(params)).
//
// # Packet positions (an extension of the model of docs/mamba2.md)
//
// With Config.PacketPositions K > 0 the input of the first layer is the
// token embedding plus a learned embedding of the token's offset in its
// packet ("packet_position.weight", (K, D)): 0 for <pkt>, 1 for the token
// after it (the <dt:k> token, or the first IP byte without timing), and so
// on, capped at K−1, which also stands for "no <pkt> read yet" (the label
// token). A byte model must otherwise count from <pkt> to know which header
// field a byte belongs to, which an SSM does only approximately. The offset
// is a function of the tokens read, so generation needs nothing besides the
// token: the graphs compute it and carry it between windows and decoding
// steps in one more state, "packet_position" (B, 1) (PacketPositionState),
// zero for a fresh sequence like every other state. Resetting, carrying,
// forking and exporting states therefore handle it without knowing it.
// Every invariant below is checked with and without it.
//
// # Label embedding (an extension of the model of docs/mamba2.md)
//
// With Config.Labels n > 0 the input of the first layer also gets a learned
// embedding of the trace's label ("label.weight", (n+1, D)): row 1+i after
// the label token FirstLabel+i was read, row 0 before any label token. A
// trace names its label once, in its first token, and a small recurrent
// state trained briefly does not carry that one token through thousands of
// packets: sampled traffic then hardly depends on the label. Like the packet
// position, the label is a function of the tokens read (a CumSum counts label
// tokens, a ScatterND writes the m-th label into slot m, a Gather reads the
// current one), carried between windows and steps in the state "label"
// (B, 1) (LabelState). Every invariant below is checked with it.
//
// # Copy logits from previous packets (an extension of the model of docs/mamba2.md)
//
// With Config.PrevPackets J > 0 the output gets copy logits: for each j in
// 1…J, the token that followed the current token's offset in the j-th packet
// before the current one (the counterpart there of the token to predict; the
// next <pkt> where that packet ended) gets bias[j, offset] + x̂·gate[j]
// added to its logit ("copy.bias" (J, PacketHistory), "copy.gate" (J, D), x̂
// the final normalised hidden state):
// the field a header-compression scheme predicts from. Consecutive packets
// repeat most header bytes (addresses, ports, connection ids, TTL); a count
// model of p(byte | offset, the previous packet's byte there) alone scores
// 2.22 nats/token on the shared captures' held-out files, against 2.93 for
// p(byte | offset), and a small SSM copies exact bytes from ~40 tokens back
// poorly. Only packets whose <pkt> lies within Config.PacketHistory tokens
// count; those tokens are carried as the state "packet_history" (B,
// PacketHistory) (PacketHistoryState: id + 1, 0 for none), so, as with
// packet positions, everything that handles states handles it. The graphs
// find packet starts without a running maximum: a CumSum counts <pkt> tokens
// over history ++ window, a ScatterND writes the position of the m-th <pkt>
// into slot m, and Gathers read the starts and the copied tokens. Every
// invariant below is checked with it (J = 2 over a 12-token history, so that
// reach matters).
//
// # Invariants and benchmarks
//
// The tests check the invariants of docs/mamba2.md in float64 through ONNX Runtime
// against ReferenceForward (the sequential recurrence): chunked SSD equals
// the recurrence with and without a carried-in state and for L not a
// multiple of Q; step-by-step logits equal the parallel forward's at every
// position; prefill(a++b) equals prefill(b) from prefill(a)'s state; the
// loss and its gradients (central differences on random coordinates of every
// parameter) match; packet offsets and previous-packet tokens carried across
// windows equal those of the whole sequence. Benchmarks are opt-in:
//
//	go test -run '^$' -bench . -benchtime 3x ./model
//
// (forward+backward tokens/s for tiny and small at B=4, L=2048; step latency
// at batch 1 and 32; peak RSS of one small forward+backward at L=16,384,
// measured as VmHWM of a child process).
//
// # Errors
//
// Config.Validate reports a bad configuration; graph building records the
// first error on the graph (graph.Graph.Err), as package graph does. Nothing
// here panics across the package boundary.
package model
