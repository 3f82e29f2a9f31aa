package model

import (
	"fmt"
	"math"

	"github.com/netssm/netssm/graph"
)

// Graph input and output names besides parameters and states.
const (
	InIDs     = "ids"
	OutLogits = "logits"
)

// LM is the model's parameters declared in one graph, in ParamShapes order.
type LM struct {
	cfg    Config
	params []*graph.Tensor
	byName map[string]*graph.Tensor
}

// LayerState is one layer's recurrent state: Conv (B, conv_dim, W) holds the
// last W raw xBC columns, SSM (B, H, P, N) the SSD state.
type LayerState struct {
	Conv, SSM *graph.Tensor
}

// DeclareParams declares every parameter of c in g with g.Param (outside any
// scope, so their names are the state-dict names of ParamShapes).
func DeclareParams(g *graph.Graph, c Config) (*LM, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m := &LM{cfg: c, byName: map[string]*graph.Tensor{}}
	for _, ps := range ParamShapes(c) {
		t := g.Param(ps.Name, ps.Shape...)
		m.params = append(m.params, t)
		m.byName[ps.Name] = t
	}
	return m, g.Err()
}

// Params are the declared parameters in ParamShapes order.
func (m *LM) Params() []*graph.Tensor { return append([]*graph.Tensor(nil), m.params...) }

// Config is the model's configuration.
func (m *LM) Config() Config { return m.cfg }

func (m *LM) p(name string) *graph.Tensor { return m.byName[name] }

// States is the recurrent state of a batch: each layer's, and with packet
// positions the (B, 1) packet-position state.
type States struct {
	Layers  []LayerState
	Packet  *graph.Tensor // nil without packet positions
	History *graph.Tensor // nil without previous packets
	Label   *graph.Tensor // nil without labels
}

// DeclareStates declares the recurrent-state inputs of every layer for
// batch B (names from StateNames), in the graph's float type.
func DeclareStates(g *graph.Graph, c Config, B int) States {
	in, _ := StateNames(c)
	shapes := StateShapes(c, B)
	st := States{Layers: make([]LayerState, c.Layers)}
	for i := range st.Layers {
		st.Layers[i].Conv = g.Input(in[2*i], g.Float(), shapes[2*i]...)
		st.Layers[i].SSM = g.Input(in[2*i+1], g.Float(), shapes[2*i+1]...)
	}
	n := 2 * c.Layers
	next := func() *graph.Tensor {
		t := g.Input(in[n], g.Float(), shapes[n]...)
		n++
		return t
	}
	if c.PacketPositions > 0 {
		st.Packet = next()
	}
	if c.PrevPackets > 0 {
		st.History = next()
	}
	if c.Labels > 0 {
		st.Label = next()
	}
	return st
}

// OutputStates declares the next states as the graph outputs of StateNames.
func OutputStates(g *graph.Graph, c Config, st States) []*graph.Tensor {
	_, out := StateNames(c)
	ts := st.flatten()
	for i, t := range ts {
		g.Output(out[i], t)
	}
	return ts
}

// flatten lists the states in StateNames order.
func (st States) flatten() []*graph.Tensor {
	var ts []*graph.Tensor
	for _, s := range st.Layers {
		ts = append(ts, s.Conv, s.SSM)
	}
	if st.Packet != nil {
		ts = append(ts, st.Packet)
	}
	if st.History != nil {
		ts = append(ts, st.History)
	}
	if st.Label != nil {
		ts = append(ts, st.Label)
	}
	return ts
}

// Forward is the parallel (chunked SSD) forward pass: ids (B, L) Int64 and
// the states carried in → logits (B, L, V) and the states carried out.
func (m *LM) Forward(ids *graph.Tensor, states States) (logits *graph.Tensor, next States) {
	x, src, next := m.residual(ids, states)
	return m.logits(x, src), next
}

// LastLogits is Forward computing the logits of the last position only
// (B, V): the prefill, which need not project every position onto the
// vocabulary.
func (m *LM) LastLogits(ids *graph.Tensor, states States) (logits *graph.Tensor, next States) {
	x, src, next := m.residual(ids, states) // (B, L, D)
	B, L, D := x.Dim(0), x.Dim(1), x.Dim(2)
	return m.logits(graph.Reshape(graph.Slice(x, 1, L-1, L), B, D), src.last()), next
}

// embed is the token embedding of ids (B, L), plus with packet positions the
// embedding of each token's offset in its packet and with labels the
// embedding of the trace's label; it sets next's packet-position and label
// states (nil without).
func (m *LM) embed(ids *graph.Tensor, states States, next *States) *graph.Tensor {
	c := m.cfg
	x := graph.Gather(m.p("embedding.weight"), ids, 0) // x: (B, L, D)
	if c.PacketPositions > 0 {
		var off *graph.Tensor
		off, next.Packet = packetOffsets(ids, states.Packet, c.PacketPositions, c.PacketToken)
		x = graph.Add(x, graph.Gather(m.p(PacketPositionParam), off, 0))
	}
	if c.Labels > 0 {
		var lab *graph.Tensor
		lab, next.Label = traceLabels(ids, states.Label, c.FirstLabel, c.Labels)
		x = graph.Add(x, graph.Gather(m.p(LabelParam), lab, 0))
	}
	return x
}

// traceLabels is each token's trace label, ids (B, L): 1 + the index of the
// last label token (ids first…first+n−1) read up to and including it, or 0
// where none was. state (B, 1) is LabelState before the window. It returns
// the labels (B, L) Int64 and the state after the window.
//
// Without a running maximum in ONNX the last label is found by counting, as
// prevPacketTokens finds packet starts: over X = state ++ window labels
// (0 where a token is no label), with c(q) the number of labels in X[0…q],
// the m-th label's value is scattered into slot m of a table T (slot 0
// stays 0, none), and the label at q is T[c(q)].
func traceLabels(ids, state *graph.Tensor, first, n int) (lab, next *graph.Tensor) {
	g, ft := ids.Graph(), state.DType()
	B, L := ids.Dim(0), ids.Dim(1)
	T, S := L+1, L+2 // X's length, the slots of the table per row
	isLab := graph.And(graph.GreaterOrEqual(ids, g.Full(graph.Int64, float64(first))),
		graph.Less(ids, g.Full(graph.Int64, float64(first+n))))
	val := graph.Where(isLab, graph.Cast(ids, ft).AddScalar(float64(1-first)), graph.ScalarLike(state, 0)) // (B, L)
	X := graph.Concat(1, state, val)                                                                       // (B, T)
	has := graph.Cast(graph.Greater(X, graph.ScalarLike(X, 0)), ft)
	count := graph.CumSum(has, 1, false, false) // (B, T)
	rowBase := graph.Reshape(g.Arange(ft, B).MulScalar(float64(S)), B, 1)
	slot := graph.Add(graph.Mul(count, has), rowBase) // (B, T): slot m of the m-th label, slot 0 otherwise
	table := graph.ScatterAdd(g.Zeros(ft, B*S), graph.Unsqueeze(graph.Cast(slot, graph.Int64), -1),
		graph.Mul(X, has)) // (B·S)
	at := graph.Cast(graph.Add(graph.Slice(count, 1, 1, T), rowBase), graph.Int64) // (B, L)
	labF := graph.Gather(table, at, 0)                                             // (B, L)
	next = graph.Slice(labF, 1, L-1, L)                                            // (B, 1)
	return graph.Cast(labF, graph.Int64), next
}

// copySource is what the copy logits read for each position: tok (…, J)
// Int64, the token after the position's offset in the j-th previous packet
// (the counterpart of the token the position predicts) or V (none), and off
// (…) Int64, the position's offset in its packet, clamped to 0…H−1 (exact
// wherever some tok is not none).
type copySource struct{ tok, off *graph.Tensor }

// prevPacketTokens finds, for each token of ids (B, L) and each j in 1…J,
// the token that followed the same offset in the j-th packet before the
// token's own (the counterpart of the token to predict, the next <pkt> where
// that packet ended there), or V (none) where the token's own <pkt> or the
// j-th previous <pkt> lies more than H tokens back (H the history length) or
// that packet is too short.
// history (B, H) is PacketHistoryState before the window (token id + 1, 0
// for none); it also returns the history after the window.
//
// Without a running maximum in ONNX, packet starts are found by counting:
// over X = history ++ ids, with c(q) the number of <pkt> in X[0…q], the
// position of the m-th <pkt> is scattered into slot m of a table P (other
// positions add 0); then the j-th packet before position q starts at
// P[c(q) − j] and the offset of q is q − P[c(q)].
func prevPacketTokens(ids, history *graph.Tensor, J, pkt, V int) (src copySource, next *graph.Tensor) {
	g, ft := ids.Graph(), history.DType()
	B, L, H := ids.Dim(0), ids.Dim(1), history.Dim(1)
	T, S := H+L, H+L+1                                                        // X's length, the slots of P per row
	X := graph.Concat(1, graph.Cast(history, graph.Int64).AddScalar(-1), ids) // (B, T), −1 where none
	next = graph.Cast(graph.Slice(X, 1, L, T), ft).AddScalar(1)
	isPkt := graph.Cast(graph.Equal(X, g.Full(graph.Int64, float64(pkt))), ft)
	count := graph.CumSum(isPkt, 1, false, false) // (B, T)
	pos := graph.Reshape(g.Arange(ft, T), 1, T)
	rowBase := func(n int) *graph.Tensor { // (B, 1): b·n
		return graph.Reshape(g.Arange(ft, B).MulScalar(float64(n)), B, 1)
	}
	slot := graph.Add(graph.Mul(count, isPkt), rowBase(S)) // (B, T)
	P := graph.ScatterAdd(g.Zeros(ft, B*S), graph.Unsqueeze(graph.Cast(slot, graph.Int64), -1),
		graph.Mul(graph.Expand(pos, B, T), isPkt)) // (B·S): P[b·S + m] = position of row b's m-th <pkt>
	flatX := graph.Reshape(X, B*T)
	q := graph.Slice(pos, 1, H, T)    // (1, L): the window's positions in X
	cw := graph.Slice(count, 1, H, T) // (B, L)
	reach := q.AddScalar(float64(-H)) // a start before this is out of reach
	start := func(j int) (s, ok *graph.Tensor) {
		m := cw.AddScalar(float64(-j))
		ok = graph.GreaterOrEqual(m, graph.ScalarLike(m, 1))
		idx := graph.Add(graph.Max(m, graph.ScalarLike(m, 0)), rowBase(S))
		s = graph.Gather(P, graph.Cast(idx, graph.Int64), 0) // (B, L)
		return s, graph.And(ok, graph.GreaterOrEqual(s, reach))
	}
	s0, ok := start(0)
	off := graph.Sub(q, s0)
	none := g.Full(graph.Int64, float64(V))
	var cols []*graph.Tensor
	later := s0 // the start of the packet after the j-th previous one
	for j := 1; j <= J; j++ {
		sj, okj := start(j)
		at := graph.Add(sj, off).AddScalar(1) // the counterpart of the next token
		use := graph.And(graph.And(ok, okj), graph.LessOrEqual(at, later))
		safe := graph.Where(use, at, graph.ScalarLike(at, 0))
		tok := graph.Gather(flatX, graph.Cast(graph.Add(safe, rowBase(T)), graph.Int64), 0) // (B, L)
		cols = append(cols, graph.Unsqueeze(graph.Where(use, tok, none), 2))
		later = sj
	}
	src.tok = graph.Concat(2, cols...)
	src.off = graph.Cast(graph.Clip(off, 0, float64(H-1)), graph.Int64)
	return src, next
}

// last is the source of the last position of (B, L) rows: tok (B, J), off (B).
func (s copySource) last() copySource {
	if s.tok == nil {
		return s
	}
	B, L, J := s.tok.Dim(0), s.tok.Dim(1), s.tok.Dim(2)
	return copySource{tok: graph.Reshape(graph.Slice(s.tok, 1, L-1, L), B, J), off: graph.Reshape(graph.Slice(s.off, 1, L-1, L), B)}
}

// copyLogits is the copy logits' boost (…, V) for the normalised hidden
// states xn (…, D): for each j, bias[j, off] + xn·gate[j] added to the logit
// of the j-th previous packet's counterpart of the next token (nothing where
// it is none).
func (m *LM) copyLogits(xn *graph.Tensor, src copySource) *graph.Tensor {
	c := m.cfg
	J, H, V := c.PrevPackets, c.PacketHistory, c.VocabSize
	g := xn.Graph()
	blocks := graph.Reshape(g.Arange(graph.Int64, J).MulScalar(float64(H)), J) // j·H
	bias := graph.Gather(graph.Reshape(m.p(CopyBiasParam), J*H), graph.Add(graph.Unsqueeze(src.off, -1), blocks), 0)
	gate := graph.Add(bias, graph.MatMul(xn, graph.Transpose(m.p(CopyGateParam), 1, 0))) // (…, J)
	hot := graph.OneHot(src.tok, V, xn.DType())                                          // (…, J, V): zeros for none
	return graph.ReduceSum(graph.Mul(graph.Unsqueeze(gate, -1), hot), xn.Rank()-1)
}

// packetOffsets is each token's offset in its packet, ids (B, L): 0 for
// <pkt>, d for the d-th token after the last <pkt>, capped at K−1, and K−1
// where no <pkt> was read in the last K−1 tokens (or ever). state (B, 1) is
// PacketPositionState before the window: 0 for nothing read, else 1 + the
// last token's offset. It returns the offsets (B, L) Int64 and the state
// after the window.
//
// Without a running maximum in ONNX, the offset is counted: with k the
// running count of <pkt> tokens, offset(i) = #{s ∈ 1…K−1 : k(i−s) = k(i)},
// the tokens before i back to (not including) the last <pkt>. The K−1 tokens
// before the window are stood in for by a single <pkt> where the state says
// the last one was.
func packetOffsets(ids, state *graph.Tensor, K, pkt int) (off, next *graph.Tensor) {
	g, ft := ids.Graph(), state.DType()
	B, L := ids.Dim(0), ids.Dim(1)
	isPkt := graph.Cast(graph.Equal(ids, g.Full(graph.Int64, float64(pkt))), ft) // (B, L)
	// last: the offset of the token before the window (K−1: none in reach).
	fresh := graph.Cast(graph.Equal(state, graph.ScalarLike(state, 0)), ft)
	last := graph.Add(state.AddScalar(-1), fresh.MulScalar(float64(K))) // (B, 1)
	// The stand-in history: position K−2−last of K−1 holds a <pkt>.
	hist := graph.Reshape(g.Arange(ft, K-1), 1, K-1)
	past := graph.Cast(graph.Equal(hist, graph.Neg(last).AddScalar(float64(K-2))), ft) // (B, K−1)
	k := graph.CumSum(graph.Concat(1, past, isPkt), 1, false, false)                   // (B, K−1+L)
	back := make([]int64, L*(K-1))
	for i := range L {
		for s := range K - 1 {
			back[i*(K-1)+s] = int64(i + K - 2 - s) // position i−1−s of the window
		}
	}
	before := graph.Gather(k, g.Const(back, L, K-1), 1)                   // (B, L, K−1)
	here := graph.Unsqueeze(graph.Slice(k, 1, K-1, K-1+L), 2)             // (B, L, 1)
	offF := graph.ReduceSum(graph.Cast(graph.Equal(before, here), ft), 2) // (B, L)
	next = graph.Reshape(graph.Slice(offF, 1, L-1, L), B, 1).AddScalar(1)
	return graph.Cast(offF, graph.Int64), next
}

// residual runs the embedding and every layer: x_{l+1} = x_l +
// Mixer_l(RMSNorm_l(x_l)); it returns the residual stream (B, L, D) before
// the final norm.
func (m *LM) residual(ids *graph.Tensor, states States) (x *graph.Tensor, src copySource, next States) {
	c := m.cfg
	x = m.embed(ids, states, &next)
	if c.PrevPackets > 0 {
		src, next.History = prevPacketTokens(ids, states.History, c.PrevPackets, c.PacketToken, c.VocabSize)
	}
	for i := range c.Layers {
		l := LayerPrefix(i)
		u := m.norm(x, m.p(l+".norm.weight"))
		out, st := m.mixer(l+".mixer.", u, states.Layers[i])
		x = graph.Add(x, out)
		next.Layers = append(next.Layers, st)
	}
	return x, src, next
}

// logits is RMSNorm_f(x)·Eᵀ over the last axis (tied embeddings), plus with
// previous packets the copy logits of src (shaped like x without its last
// axis).
func (m *LM) logits(x *graph.Tensor, src copySource) *graph.Tensor {
	xn := m.norm(x, m.p("norm_f.weight"))
	out := graph.MatMul(xn, graph.Transpose(m.p("embedding.weight"), 1, 0))
	if m.cfg.PrevPackets > 0 {
		out = graph.Add(out, m.copyLogits(xn, src))
	}
	return out
}

// Step is one decoding step: ids (B) Int64 and the states → logits (B, V)
// and the next states, by the recurrence.
func (m *LM) Step(ids *graph.Tensor, states States) (logits *graph.Tensor, next States) {
	c := m.cfg
	B := ids.Dim(0)
	ids2 := graph.Reshape(ids, B, 1)
	x := graph.Reshape(m.embed(ids2, states, &next), B, c.DModel) // x: (B, D)
	var src copySource
	if c.PrevPackets > 0 {
		src, next.History = prevPacketTokens(ids2, states.History, c.PrevPackets, c.PacketToken, c.VocabSize)
		src = src.last()
	}
	for i := range c.Layers {
		var st LayerState
		x, st = m.blockStep(LayerPrefix(i), x, states.Layers[i])
		next.Layers = append(next.Layers, st)
	}
	return m.logits(x, src), next // (B, V)
}

// BlockStepMaxBatch is the largest batch whose fused step graph runs each
// block as one BlockStep node; larger batches keep ONNX Runtime's matrix
// products around MixerStep, which are faster once a weight row serves many
// batch rows (BenchmarkStep of the small preset on this project's 2-core test
// machine: BlockStep faster at batches 1, 4 and 8 on one core and on two,
// slower at 16).
const BlockStepMaxBatch = 8

// blockStep is one residual block's decoding step, x: (B, D): x +
// mixerStep(norm(x)), in one BlockStep node with the fused kernels at a batch
// up to BlockStepMaxBatch.
func (m *LM) blockStep(l string, x *graph.Tensor, st LayerState) (*graph.Tensor, LayerState) {
	pre := l + ".mixer."
	if m.fused(x) && x.Dim(0) <= BlockStepMaxBatch {
		p := graph.BlockParams{Norm: m.p(l + ".norm.weight"), InProj: graph.BlockPanels(m.p(pre + "in_proj.weight")), ConvW: m.p(pre + "conv1d.weight"),
			ConvB: m.p(pre + "conv1d.bias"), DtBias: m.p(pre + "dt_bias"), ALog: m.p(pre + "A_log"), D: m.p(pre + "D"),
			GateNorm: m.p(pre + "norm.weight"), OutProj: graph.BlockPanels(m.p(pre + "out_proj.weight"))}
		next, conv, ssm := graph.BlockStep(x, p, st.Conv, st.SSM, normEps)
		return next, LayerState{Conv: conv, SSM: ssm}
	}
	out, next := m.mixerStep(pre, m.norm(x, m.p(l+".norm.weight")), st)
	return graph.Add(x, out), next
}

// norm is normRMS, in one fused node when the graph uses the fused kernels.
func (m *LM) norm(x, w *graph.Tensor) *graph.Tensor {
	if m.fused(x) {
		return graph.RMSNorm(x, w, normEps)
	}
	return normRMS(x, w)
}

// normRMS is x / √(mean(x²) + 1e-5) ⊙ w over the last axis.
func normRMS(x, w *graph.Tensor) *graph.Tensor {
	ms := graph.ReduceMeanKeep(graph.Square(x), -1)
	return graph.Mul(graph.Div(x, graph.Sqrt(ms.AddScalar(normEps))), w)
}

// mixer is one Mamba-2 mixer over a window, u: (B, L, D):
//  1. zxbcdt = u·W_inᵀ, split into z, xBC, dt_raw;
//  2. causal depthwise conv over time, continuing the carried conv state; silu;
//  3. split x, Bm, Cm; dt = softplus(dt_raw + dt_bias); A = −exp(A_log);
//  4. chunked SSD from the carried SSM state;
//  5. + D·x, gated RMSNorm (gate first), out_proj.
func (m *LM) mixer(pre string, u *graph.Tensor, st LayerState) (*graph.Tensor, LayerState) {
	c := m.cfg
	B, L := u.Dim(0), u.Dim(1)
	di, H, P, N := c.DInner(), c.Heads(), c.HeadDim, c.DState
	z, xbc, dtRaw := m.inProj(pre, u)

	var xbcC, nextConv *graph.Tensor // silu(conv(xBC)) (B, L, C), the last W raw columns (B, C, W)
	if m.fused(u) {
		xbcC, nextConv = graph.ConvSilu(xbc, st.Conv, m.p(pre+"conv1d.weight"), m.p(pre+"conv1d.bias"))
	} else {
		xbcC, nextConv = convSilu(xbc, st.Conv, m.p(pre+"conv1d.weight"), m.p(pre+"conv1d.bias"))
	}
	xs := graph.Split(xbcC, -1, di, N, N)
	x := graph.Reshape(xs[0], B, L, H, P) // (B, L, H, P)
	bm, cm := xs[1], xs[2]                // (B, L, N) each (one group)

	dt := graph.Softplus(graph.Add(dtRaw, m.p(pre+"dt_bias"))) // (B, L, H)
	A := graph.Neg(graph.Exp(m.p(pre + "A_log")))              // (H)
	var y, nextSSM *graph.Tensor                               // (B, L, H, P), (B, H, P, N)
	if m.fused(u) {
		y, nextSSM = graph.SSDScan(x, dt, A, bm, cm, st.SSM, min(c.ChunkSize, FusedChunk))
	} else {
		y, nextSSM = ssd(x, dt, A, bm, cm, st.SSM, c.ChunkSize)
	}
	out := m.gatedOut(pre, y, x, z)
	return out, LayerState{Conv: nextConv, SSM: nextSSM}
}

// inProj is step 1 of mixer: zxbcdt = u·W_inᵀ split into z (…, d_inner),
// xBC (…, conv_dim) and dt_raw (…, H). With the fused kernels it splits
// W_in's rows instead and runs one product per part, which computes the same
// values without copying (B, L, width) activations into three tensors
// forward and concatenating their gradients backward.
func (m *LM) inProj(pre string, u *graph.Tensor) (z, xbc, dtRaw *graph.Tensor) {
	c := m.cfg
	di, C, H := c.DInner(), c.ConvDim(), c.Heads()
	w := m.p(pre + "in_proj.weight") // (width, D)
	if m.fused(u) {
		ws := graph.Split(w, 0, di, C, H)
		mm := func(wi *graph.Tensor) *graph.Tensor { return graph.MatMul(u, graph.Transpose(wi, 1, 0)) }
		return mm(ws[0]), mm(ws[1]), mm(ws[2])
	}
	parts := graph.Split(graph.MatMul(u, graph.Transpose(w, 1, 0)), -1, di, C, H) // (B, L, width) split
	return parts[0], parts[1], parts[2]
}

// convSilu is the causal depthwise convolution over time of xbc (B, L, C),
// continuing the carried columns state (B, C, W), followed by silu; it
// returns the result (B, L, C) and the last W raw columns (B, C, W). It works
// in (B, C, time) layout.
func convSilu(xbc, state, w, bias *graph.Tensor) (y, next *graph.Tensor) {
	L, W := xbc.Dim(1), state.Dim(2)
	full := graph.Concat(2, state, graph.Transpose(xbc, 0, 2, 1)) // (B, C, W+L): carried columns first
	next = graph.Slice(full, 2, L, L+W)
	acc := graph.Unsqueeze(bias, 1) // (C, 1)
	for k := range W {
		// output t reads full[1+t+k] = xBC[t−W+1+k]
		acc = graph.Add(acc, graph.Mul(graph.Slice(full, 2, 1+k, 1+k+L), graph.Slice(w, 1, k, k+1)))
	}
	return graph.Silu(graph.Transpose(acc, 0, 2, 1)), next
}

// gatedOut is a mixer's output from the scan's y (…, H, P) and its input x
// (same shape): the D·x skip, the gated RMSNorm (g = (y + D·x) ⊙ silu(z),
// normalised, ⊙ norm.weight; z (…, H·P)) and out_proj. With the fused
// kernels the skip, gate and norm are one GatedRMSNorm node.
func (m *LM) gatedOut(pre string, y, x, z *graph.Tensor) *graph.Tensor {
	dims := z.Shape() // (…, H·P)
	var n *graph.Tensor
	if m.fused(y) {
		n = graph.GatedRMSNorm(graph.Reshape(y, dims...), graph.Reshape(x, dims...), m.p(pre+"D"), z, m.p(pre+"norm.weight"), normEps)
	} else {
		q := graph.Reshape(graph.Add(y, graph.Mul(x, graph.Unsqueeze(m.p(pre+"D"), 1))), dims...)
		n = normRMS(graph.Mul(q, graph.Silu(z)), m.p(pre+"norm.weight"))
	}
	return graph.MatMul(n, graph.Transpose(m.p(pre+"out_proj.weight"), 1, 0))
}

// ssd is the chunked state-space dual form of the recurrence
// h_t = exp(dt_t·A)·h_{t−1} + dt_t·x_t⊗Bm_t, y_t = h_t·Cm_t, for
// x (B, L, H, P), dt (B, L, H), A (H), Bm and Cm (B, L, N), h₋₁ = h0
// (B, H, P, N). It returns y (B, L, H, P) (without the D·x skip) and the
// final state. L is padded with zeros to a multiple of Q after
// discretising, so the final state is exact.
func ssd(x, dt, A, bm, cm, h0 *graph.Tensor, Q int) (y, final *graph.Tensor) {
	if err := x.Graph().Err(); err != nil {
		return x, h0 // an op before failed; the graph keeps its error (and the shapes here may be empty)
	}
	B, L, H, P, N := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3), bm.Dim(2)
	Q = min(Q, L)
	nc := (L + Q - 1) / Q
	Lp := nc * Q
	xd := graph.Mul(x, graph.Unsqueeze(dt, 3)) // X̃ = x·dt: (B, L, H, P)
	ad := graph.Mul(dt, A)                     // Ã = A·dt ≤ 0: (B, L, H)
	if pad := Lp - L; pad > 0 {
		xd = graph.Pad(xd, []int{0, 0, 0, 0}, []int{0, pad, 0, 0}, 0)
		ad = graph.Pad(ad, []int{0, 0, 0}, []int{0, pad, 0}, 0)
		bm = graph.Pad(bm, []int{0, 0, 0}, []int{0, pad, 0}, 0)
		cm = graph.Pad(cm, []int{0, 0, 0}, []int{0, pad, 0}, 0)
	}
	// Every per-chunk tensor is laid out head-major, (B, H, n_c, …), and Bm,
	// Cm (one group) as (B, 1, n_c, Q, N): then the chunk states need no
	// transpose between the four steps, only reshapes, and the one transpose
	// that remains in the middle of a MatMul (H_cᵀ) swaps its last two axes,
	// which ONNX Runtime fuses into the MatMul.
	xc := graph.Transpose(graph.Reshape(xd, B, nc, Q, H, P), 0, 3, 1, 2, 4) // (B, H, nc, Q, P)
	ac := graph.Transpose(graph.Reshape(ad, B, nc, Q, H), 0, 3, 1, 2)       // (B, H, nc, Q)
	bc := graph.Reshape(bm, B, 1, nc, Q, N)                                 // (B, 1, nc, Q, N)
	cc := graph.Reshape(cm, B, 1, nc, Q, N)                                 // (B, 1, nc, Q, N)

	acum := graph.CumSum(ac, -1, false, false) // (B, H, nc, Q), inclusive
	// 1. Inside chunks: Y_diag = ((Cm·Bmᵀ) ⊙ exp(segsum))·X̃.
	lmat := expSegsum(acum)                                    // (B, H, nc, Q, Q)
	cb := graph.MatMul(cc, graph.Transpose(bc, 0, 1, 2, 4, 3)) // (B, 1, nc, Q, Q)
	yDiag := graph.MatMul(graph.Mul(cb, lmat), xc)             // (B, H, nc, Q, P)

	// 2. Chunk states: S_c = Σ_l exp(Acum_last − Acum_l)·X̃_l ⊗ Bm_l.
	alast := graph.Slice(acum, -1, Q-1, Q)                         // (B, H, nc, 1)
	decay := graph.Exp(graph.Sub(alast, acum))                     // (B, H, nc, Q)
	xw := graph.Mul(xc, graph.Unsqueeze(decay, 4))                 // (B, H, nc, Q, P)
	states := graph.MatMul(graph.Transpose(xw, 0, 1, 2, 4, 3), bc) // (B, H, nc, P, N)

	// 3. Across chunks: H_{c+1} = exp(a_c)·H_c + S_c, as one matmul with
	// exp(segsum) of the chunk totals padded with a leading 0.
	all := graph.Concat(2, graph.Unsqueeze(h0, 2), states)                            // (B, H, nc+1, P, N)
	a := graph.Pad(graph.Reshape(alast, B, H, nc), []int{0, 0, 1}, []int{0, 0, 0}, 0) // (B, H, nc+1)
	hs := graph.MatMul(expSegsumOf(a), graph.Reshape(all, B, H, nc+1, P*N))           // (B, H, nc+1, P·N)
	final = graph.Reshape(graph.Slice(hs, 2, nc, nc+1), B, H, P, N)                   // H_{n_c}
	hPrev := graph.Reshape(graph.Slice(hs, 2, 0, nc), B, H, nc, P, N)                 // (B, H, nc, P, N): H_c before chunk c

	// 4. From earlier chunks: Y_off[l] = exp(Acum_l)·(Cm_l·H_cᵀ).
	yOff := graph.Mul(graph.MatMul(cc, graph.Transpose(hPrev, 0, 1, 2, 4, 3)), graph.Unsqueeze(graph.Exp(acum), 4)) // (B, H, nc, Q, P)

	y = graph.Transpose(graph.Add(yDiag, yOff), 0, 2, 3, 1, 4) // (B, nc, Q, H, P)
	y = graph.Reshape(y, B, Lp, H, P)
	if Lp > L {
		y = graph.Slice(y, 1, 0, L)
	}
	return y, final
}

// expSegsum is exp(cs_l − cs_s) for l ≥ s and 0 above the diagonal, over the
// last axis of the cumulative sums cs (…, T) → (…, T, T). The mask is added
// before the Exp as 0 / −∞ (exp(−∞) = 0): masking after it would turn an
// overflowed entry into inf·0 = NaN under autodiff, and an Add that
// broadcasts a (T, T) constant is several times cheaper in ONNX Runtime than
// a Where that broadcasts a bool one (the Q×Q terms are the largest tensors
// of a train step).
func expSegsum(cs *graph.Tensor) *graph.Tensor {
	T := cs.Dim(-1)
	diff := graph.Sub(graph.Unsqueeze(cs, -1), graph.Unsqueeze(cs, -2)) // [l, s] = cs_l − cs_s
	return graph.Exp(graph.Add(diff, causalBias(cs, T)))
}

// expSegsumOf is exp(Σ_{s<i≤l} a_i) for l ≥ s and 0 above the diagonal, for
// a (…, T) → (…, T, T). Unlike expSegsum it sums the segment itself instead of
// subtracting two long cumulative sums, so in float32 a decay between chunks
// far into a long window keeps its precision. It costs T² per row: use it on
// the chunk totals, where T = n_c + 1 is small.
func expSegsumOf(a *graph.Tensor) *graph.Tensor {
	T := a.Dim(-1)
	strict := make([]bool, T*T)
	for l := range T {
		for s := range l {
			strict[l*T+s] = true
		}
	}
	zero := graph.ScalarLike(a, 0)
	terms := graph.Where(a.Graph().Const(strict, T, T), graph.Unsqueeze(a, -1), zero) // [i, s] = a_i for i > s
	seg := graph.CumSum(terms, -2, false, false)                                      // [l, s] = Σ_{s<i≤l} a_i
	return graph.Exp(graph.Add(seg, causalBias(a, T)))
}

// causalBias is the (T, T) constant of x's dtype that is 0 where s ≤ l and
// −∞ elsewhere: added to a logarithm before an Exp it masks
// the entries above the diagonal to exactly 0, with a zero gradient there.
func causalBias(x *graph.Tensor, T int) *graph.Tensor {
	bias := make([]float64, T*T)
	for l := range T {
		for s := range T {
			if s > l {
				bias[l*T+s] = math.Inf(-1)
			}
		}
	}
	if x.DType() == graph.Float32 {
		b32 := make([]float32, len(bias))
		for i, v := range bias {
			b32[i] = float32(v)
		}
		return x.Graph().Const(b32, T, T)
	}
	return x.Graph().Const(bias, T, T)
}

// FusedChunk caps the chunk length the fused SSD kernels work in. The scan's
// result does not depend on it (up to rounding); on the CPU the kernels'
// Q×Q terms grow with it while the terms between chunks do not, and 64 was
// the fastest of 32, 64 and 128 for the small preset's train step.
const FusedChunk = 64

// fused reports whether the mixers of the graph of t use the fused kernels:
// when the configuration asks for them and the graph is float32.
func (m *LM) fused(t *graph.Tensor) bool {
	return m.cfg.Fused() && t.DType() == graph.Float32
}

// mixerStep is one mixer decoding step, u: (B, D).
func (m *LM) mixerStep(pre string, u *graph.Tensor, st LayerState) (*graph.Tensor, LayerState) {
	c := m.cfg
	B := u.Dim(0)
	di, C, W, H, P, N := c.DInner(), c.ConvDim(), c.DConv, c.Heads(), c.HeadDim, c.DState
	zxbcdt := graph.MatMul(u, graph.Transpose(m.p(pre+"in_proj.weight"), 1, 0)) // (B, width)
	if m.fused(u) {
		g, conv, ssm := graph.MixerStep(zxbcdt, st.Conv, m.p(pre+"conv1d.weight"), m.p(pre+"conv1d.bias"),
			m.p(pre+"dt_bias"), m.p(pre+"A_log"), m.p(pre+"D"), m.p(pre+"norm.weight"), st.SSM)
		out := graph.MatMul(g, graph.Transpose(m.p(pre+"out_proj.weight"), 1, 0))
		return out, LayerState{Conv: conv, SSM: ssm}
	}
	parts := graph.Split(zxbcdt, -1, di, C, H)
	z, xbc, dtRaw := parts[0], parts[1], parts[2]
	// Shift the conv state left by one and write xBC into the last column.
	conv := graph.Concat(2, graph.Slice(st.Conv, 2, 1, W), graph.Unsqueeze(xbc, 2)) // (B, C, W)
	acc := graph.ReduceSum(graph.Mul(conv, m.p(pre+"conv1d.weight")), 2)            // (B, C)
	xbcC := graph.Silu(graph.Add(acc, m.p(pre+"conv1d.bias")))
	xs := graph.Split(xbcC, -1, di, N, N)
	x := graph.Reshape(xs[0], B, H, P)                                     // (B, H, P)
	bm, cm := xs[1], xs[2]                                                 // (B, N)
	dt := graph.Softplus(graph.Add(dtRaw, m.p(pre+"dt_bias")))             // (B, H)
	dA := graph.Exp(graph.Mul(dt, graph.Neg(graph.Exp(m.p(pre+"A_log"))))) // (B, H)
	// ssm ← ssm·dA + (dt·x) ⊗ Bm
	dtx := graph.Unsqueeze(graph.Mul(x, graph.Unsqueeze(dt, 2)), 3)               // (B, H, P, 1)
	outer := graph.MatMul(dtx, graph.Reshape(bm, B, 1, 1, N))                     // (B, H, P, N), a rank-1 product
	ssm := graph.Add(graph.Mul(st.SSM, graph.Reshape(dA, B, H, 1, 1)), outer)     // (B, H, P, N)
	y := graph.Reshape(graph.MatMul(ssm, graph.Reshape(cm, B, 1, N, 1)), B, H, P) // ssm·Cm
	out := m.gatedOut(pre, y, x, z)
	return out, LayerState{Conv: conv, SSM: ssm}
}

// MaskedCrossEntropy is the mean next-token cross-entropy in nats over the
// positions where mask is 1: logits (B, L, V), targets (B, L) Int64, mask
// (B, L) float. An all-zero mask gives 0.
func MaskedCrossEntropy(logits, targets, mask *graph.Tensor) *graph.Tensor {
	return maskedCrossEntropy(logits, targets, mask, false)
}

func maskedCrossEntropy(logits, targets, mask *graph.Tensor, fused bool) *graph.Tensor {
	total := graph.ReduceSum(graph.Mul(tokenNLL(logits, targets, fused), mask))
	count := graph.Max(graph.ReduceSum(mask), graph.ScalarLike(total, 1))
	return graph.Div(total, count)
}

// TokenCrossEntropy is the next-token cross-entropy of every position in
// nats, (B, L), zero where mask is 0.
func TokenCrossEntropy(logits, targets, mask *graph.Tensor) *graph.Tensor {
	return tokenCrossEntropy(logits, targets, mask, false)
}

func tokenCrossEntropy(logits, targets, mask *graph.Tensor, fused bool) *graph.Tensor {
	return graph.Mul(tokenNLL(logits, targets, fused), mask)
}

// tokenNLL is −log softmax(logits)[target] of every position, (B, L): with
// fused, in one SoftmaxCrossEntropy node (float32 graphs), otherwise a
// LogSoftmax picked by a one-hot product.
func tokenNLL(logits, targets *graph.Tensor, fused bool) *graph.Tensor {
	if fused && logits.DType() == graph.Float32 {
		return graph.SoftmaxCrossEntropy(logits, targets)
	}
	V := logits.Dim(-1)
	logp := graph.LogSoftmax(logits, -1)
	return graph.Neg(graph.ReduceSum(graph.Mul(logp, graph.OneHot(targets, V, logits.DType())), -1)) // (B, L)
}

// TokenLoss is TrainLoss with the loss of every position, (B, L) nats,
// instead of their mean: train.BuildEvalStep then makes a validation graph
// that reports each target token's loss (netssm-cli eval loss-by-offset).
func TokenLoss(c Config) func(g *graph.Graph, ids, targets, mask *graph.Tensor) (loss *graph.Tensor, statesIn, statesOut, params []*graph.Tensor) {
	return lossBuilder(c, func(logits, targets, mask *graph.Tensor) *graph.Tensor {
		return tokenCrossEntropy(logits, targets, mask, c.Fused())
	})
}

// TrainLoss returns the loss builder the training loop consumes (its type
// matches train.LossBuilder): it declares the parameters (ParamShapes order)
// and the carried-in states, runs Forward on ids and returns the masked
// next-token cross-entropy, the state inputs and outputs, and the parameters.
// A bad configuration is recorded as the graph's error.
func TrainLoss(c Config) func(g *graph.Graph, ids, targets, mask *graph.Tensor) (loss *graph.Tensor, statesIn, statesOut, params []*graph.Tensor) {
	return lossBuilder(c, func(logits, targets, mask *graph.Tensor) *graph.Tensor {
		return maskedCrossEntropy(logits, targets, mask, c.Fused())
	})
}

// lossBuilder declares the parameters and states, runs Forward on ids and
// applies lossOf to the logits.
func lossBuilder(c Config, lossOf func(logits, targets, mask *graph.Tensor) *graph.Tensor) func(g *graph.Graph, ids, targets, mask *graph.Tensor) (loss *graph.Tensor, statesIn, statesOut, params []*graph.Tensor) {
	return func(g *graph.Graph, ids, targets, mask *graph.Tensor) (loss *graph.Tensor, statesIn, statesOut, params []*graph.Tensor) {
		m, err := DeclareParams(g, c)
		if err != nil {
			// Record the error on the graph through a build step that fails.
			g.Param(fmt.Sprintf("invalid model config: %v", err), -1)
			return graph.ScalarLike(mask, 0), nil, nil, nil
		}
		in := DeclareStates(g, c, ids.Dim(0))
		logits, next := m.Forward(ids, in)
		return lossOf(logits, targets, mask), in.flatten(), OutputStates(g, c, next), m.Params()
	}
}
