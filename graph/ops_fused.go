package graph

// Ops of netssm's own ONNX domain, whose CPU kernels package ort compiles
// into the binary and registers on every session that uses them. A graph
// with one of them loads only in netssm; the standard-op form of the same
// computation stays the reference and the portable form.

// FusedDomain is the ONNX domain of the fused ops, FusedOpset its version.
const (
	FusedDomain = "ai.netssm"
	FusedOpset  = 1
)

// fusedOps are the op types of FusedDomain (package ort registers the same
// names; a test checks that they agree).
var fusedOps = map[string]bool{"SSDScan": true, "SSDScanGrad": true, "MixerStep": true, "BlockStep": true, "ConvSilu": true, "ConvSiluGrad": true,
	"RMSNorm": true, "RMSNormGrad": true, "GatedRMSNorm": true, "GatedRMSNormGrad": true,
	"SoftmaxCrossEntropy": true, "SoftmaxCrossEntropyGrad": true}

// FusedOps lists the op types of FusedDomain that the builder emits.
func FusedOps() []string {
	return []string{"SSDScan", "SSDScanGrad", "MixerStep", "BlockStep", "ConvSilu", "ConvSiluGrad", "RMSNorm", "RMSNormGrad",
		"GatedRMSNorm", "GatedRMSNormGrad", "SoftmaxCrossEntropy", "SoftmaxCrossEntropyGrad"}
}

// SSDScan is the chunked SSD scan of one layer in one fused float32 node:
// for x (B, L, H, P), dt (B, L, H), A (H), Bm and Cm (B, L, N) (one group)
// and the carried state h0 (B, H, P, N), with h₋₁ = h0,
// h_t = exp(dt_t·A)·h_{t−1} + dt_t·x_t⊗Bm_t and y_t = h_t·Cm_t, it returns y
// (B, L, H, P) (without the D·x skip) and the final state. chunk is the
// chunk length the kernel works in. Its gradient is the SSDScanGrad node.
// The node has a third output, the states entering the chunks (B, H,
// ⌈L/chunk⌉, N, P), which only the gradient node reads: the backward
// takes them from the forward instead of recomputing them.
func SSDScan(x, dt, A, bm, cm, h0 *Tensor, chunk int) (y, final *Tensor) {
	outs := []*Tensor{x, h0}
	func() {
		defer guardAll(x, &outs, 2)
		g := sameGraph("SSDScan", x, dt, A, bm, cm, h0)
		checkSSD("SSDScan", x, dt, A, bm, cm, h0, chunk)
		B, L, H, P, N := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3), bm.Dim(2)
		outs = g.addNode("SSDScan", []*Tensor{x, dt, A, bm, cm, h0}, []attribute{{"chunk", chunk}}, nil,
			[]outSpec{{x.dtype, x.shape.Clone()}, {h0.dtype, h0.shape.Clone()}, {x.dtype, Shape{B, H, (L + chunk - 1) / chunk, N, P}}})
	}()
	return outs[0], outs[1]
}

// checkSSD checks the shapes of an SSD scan's inputs.
func checkSSD(op string, x, dt, A, bm, cm, h0 *Tensor, chunk int) {
	for _, t := range []*Tensor{x, dt, A, bm, cm, h0} {
		if t.dtype != Float32 {
			failf("%s: the fused kernels are float32, got %s", op, t)
		}
	}
	if x.Rank() != 4 || bm.Rank() != 3 || chunk < 1 {
		failf("%s: x %s must be (B, L, H, P), Bm %s (B, L, N), chunk %d positive", op, x, bm, chunk)
	}
	B, L, H, P, N := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3), bm.Dim(2)
	if !dt.shape.Equal(Shape{B, L, H}) || !A.shape.Equal(Shape{H}) || !bm.shape.Equal(Shape{B, L, N}) ||
		!cm.shape.Equal(Shape{B, L, N}) || !h0.shape.Equal(Shape{B, H, P, N}) {
		failf("%s: shapes do not agree: x %s, dt %s, A %s, Bm %s, Cm %s, h0 %s", op, x, dt, A, bm, cm, h0)
	}
}

// vjpSSDScan is the SSDScanGrad node: from the forward's chunk states and
// its y it recomputes inside chunks and returns the gradients of x, dt, A, Bm, Cm
// and h0 (a missing dy or dfinal is zeros).
func vjpSSDScan(n *node, d []*Tensor) []*Tensor {
	g := n.outputs[0].g
	dy, dfinal := d[0], d[1]
	if dy == nil {
		dy = g.Zeros(n.outputs[0].dtype, n.outputs[0].shape...)
	}
	if dfinal == nil {
		dfinal = g.Zeros(n.outputs[1].dtype, n.outputs[1].shape...)
	}
	ins := append(append([]*Tensor(nil), n.inputs...), dy, dfinal, n.outputs[2], n.outputs[0])
	specs := make([]outSpec, 6)
	for i, in := range n.inputs {
		specs[i] = outSpec{in.dtype, in.shape.Clone()}
	}
	return g.addNode("SSDScanGrad", ins, []attribute{{"chunk", n.intAttr("chunk")}}, nil, specs)
}

// MixerStep is the recurrent part of one Mamba-2 mixer decoding step in one
// fused float32 node: from zxbcdt (B, 2·H·P + 2N + H) (in_proj's output,
// [z, xBC, dt_raw]), the conv state (B, C, K) with C = H·P + 2N, the
// layer's conv weight (C, K) and bias (C), dt_bias, A_log and D (H), the
// gated norm's weight (H·P) and the SSM state (B, H, P, N), it shifts xBC
// into the conv window, convolves, applies silu, updates the SSM state,
// reads y = state·Cm + D·x and returns RMSNorm(y ⊙ silu(z)) ⊙ weight
// (B, H·P) and the next conv and SSM states. It has no gradient (decoding).
func MixerStep(zxbcdt, conv, convW, convB, dtBias, aLog, D, normW, ssm *Tensor) (out, nextConv, nextSSM *Tensor) {
	outs := []*Tensor{zxbcdt, conv, ssm}
	func() {
		defer guardAll(zxbcdt, &outs, 3)
		ins := []*Tensor{zxbcdt, conv, convW, convB, dtBias, aLog, D, normW, ssm}
		g := sameGraph("MixerStep", ins...)
		for _, t := range ins {
			if t.dtype != Float32 {
				failf("MixerStep: the fused kernels are float32, got %s", t)
			}
		}
		if ssm.Rank() != 4 || conv.Rank() != 3 {
			failf("MixerStep: ssm %s must be (B, H, P, N), conv %s (B, C, K)", ssm, conv)
		}
		B, H, P, N, K := ssm.Dim(0), ssm.Dim(1), ssm.Dim(2), ssm.Dim(3), conv.Dim(2)
		di, C := H*P, H*P+2*N
		if !zxbcdt.shape.Equal(Shape{B, 2*di + 2*N + H}) || !conv.shape.Equal(Shape{B, C, K}) || !convW.shape.Equal(Shape{C, K}) ||
			!convB.shape.Equal(Shape{C}) || !dtBias.shape.Equal(Shape{H}) || !aLog.shape.Equal(Shape{H}) || !D.shape.Equal(Shape{H}) ||
			!normW.shape.Equal(Shape{di}) {
			failf("MixerStep: shapes do not agree with ssm %s and conv %s: %v", ssm, conv, ins)
		}
		outs = g.addNode("MixerStep", ins, nil, nil, []outSpec{{Float32, Shape{B, di}}, {Float32, conv.shape.Clone()}, {Float32, ssm.shape.Clone()}})
	}()
	return outs[0], outs[1], outs[2]
}

// BlockParams are the weights of one residual block that BlockStep reads:
// the block's RMSNorm weight (D), in_proj (2·H·P+2N+H, D) and out_proj (D,
// H·P) as BlockPanels, the conv weight (C, K) and bias (C), dt_bias, A_log
// and D (H) and the gated norm's weight (H·P).
type BlockParams struct {
	Norm, InProj, ConvW, ConvB, DtBias, ALog, D, GateNorm, OutProj *Tensor
}

// BlockPanel is the number of output columns in a panel of BlockPanels.
const BlockPanel = 16

// BlockPanels packs a projection's weight w (O, I) for BlockStep: (⌈O/16⌉,
// I, 16), panel p holding rows 16p…16p+15 of w transposed and zeros past
// row O, so that the kernel reads every panel as one contiguous stream. On
// an initializer the ops fold into a constant when the session loads.
func BlockPanels(w *Tensor) *Tensor {
	O, I := w.Dim(0), w.Dim(1)
	n := (O + BlockPanel - 1) / BlockPanel
	if pad := n*BlockPanel - O; pad > 0 {
		w = Concat(0, w, w.g.Zeros(w.dtype, pad, I))
	}
	return Transpose(Reshape(w, n, BlockPanel, I), 0, 2, 1)
}

// BlockStep is one residual block's decoding step in one fused float32
// node: x' = x + MixerStep(RMSNorm(x, eps)·in_projᵀ, …)·out_projᵀ for x (B, D),
// with the conv state (B, C, K) and SSM state (B, H, P, N) carried as in
// MixerStep; it returns x' (B, D) and the next conv and SSM states. Its
// projections are matrix-vector products that read each weight once per
// step, which is the step's cost at a small batch. It has no gradient
// (decoding).
func BlockStep(x *Tensor, p BlockParams, conv, ssm *Tensor, eps float64) (next, nextConv, nextSSM *Tensor) {
	outs := []*Tensor{x, conv, ssm}
	func() {
		defer guardAll(x, &outs, 3)
		ins := []*Tensor{x, p.Norm, p.InProj, conv, p.ConvW, p.ConvB, p.DtBias, p.ALog, p.D, p.GateNorm, ssm, p.OutProj}
		g := sameGraph("BlockStep", ins...)
		for _, t := range ins {
			if t.dtype != Float32 {
				failf("BlockStep: the fused kernels are float32, got %s", t)
			}
		}
		if x.Rank() != 2 || ssm.Rank() != 4 || conv.Rank() != 3 {
			failf("BlockStep: x %s must be (B, D), ssm %s (B, H, P, N), conv %s (B, C, K)", x, ssm, conv)
		}
		B, Dm := x.Dim(0), x.Dim(1)
		H, P, N, K := ssm.Dim(1), ssm.Dim(2), ssm.Dim(3), conv.Dim(2)
		di, C := H*P, H*P+2*N
		if ssm.Dim(0) != B || !p.Norm.shape.Equal(Shape{Dm}) || !p.InProj.shape.Equal(panels(2*di+2*N+H, Dm)) ||
			!conv.shape.Equal(Shape{B, C, K}) || !p.ConvW.shape.Equal(Shape{C, K}) || !p.ConvB.shape.Equal(Shape{C}) ||
			!p.DtBias.shape.Equal(Shape{H}) || !p.ALog.shape.Equal(Shape{H}) || !p.D.shape.Equal(Shape{H}) ||
			!p.GateNorm.shape.Equal(Shape{di}) || !p.OutProj.shape.Equal(panels(Dm, di)) {
			failf("BlockStep: shapes do not agree with x %s, ssm %s and conv %s: %v", x, ssm, conv, ins)
		}
		if !(eps > 0) {
			failf("BlockStep: eps %g must be positive", eps)
		}
		outs = g.addNode("BlockStep", ins, []attribute{{"eps", eps}}, nil,
			[]outSpec{{Float32, x.shape.Clone()}, {Float32, conv.shape.Clone()}, {Float32, ssm.shape.Clone()}})
	}()
	return outs[0], outs[1], outs[2]
}

// panels is the shape of BlockPanels of an (O, I) weight.
func panels(O, I int) Shape { return Shape{(O + BlockPanel - 1) / BlockPanel, I, BlockPanel} }

// ConvSilu is a mixer's causal depthwise convolution followed by silu in one
// fused float32 node: with full = [state, x] along time (the carried
// state's W columns first), y[b, t, c] = silu(bias[c] + Σ_k w[c, k]·
// full[b, t+1+k, c]) for x (B, L, C), state (B, C, W), w (C, W) and bias
// (C); it returns y (B, L, C) and the next state, full's last W columns
// (B, C, W). Its gradient is the ConvSiluGrad node.
func ConvSilu(x, state, w, bias *Tensor) (y, next *Tensor) {
	outs := []*Tensor{x, state}
	func() {
		defer guardAll(x, &outs, 2)
		ins := []*Tensor{x, state, w, bias}
		g := sameGraph("ConvSilu", ins...)
		for _, t := range ins {
			if t.dtype != Float32 {
				failf("ConvSilu: the fused kernels are float32, got %s", t)
			}
		}
		if x.Rank() != 3 || state.Rank() != 3 {
			failf("ConvSilu: x %s must be (B, L, C), state %s (B, C, W)", x, state)
		}
		B, C, W := x.Dim(0), x.Dim(2), state.Dim(2)
		if !state.shape.Equal(Shape{B, C, W}) || !w.shape.Equal(Shape{C, W}) || !bias.shape.Equal(Shape{C}) || W < 1 {
			failf("ConvSilu: shapes do not agree: x %s, state %s, w %s, bias %s", x, state, w, bias)
		}
		outs = g.addNode("ConvSilu", ins, nil, nil, []outSpec{{Float32, x.shape.Clone()}, {Float32, state.shape.Clone()}})
	}()
	return outs[0], outs[1]
}

// vjpConvSilu is the ConvSiluGrad node: it recomputes the convolution and
// returns the gradients of x, state, w and bias (a missing dy or dnext is
// zeros).
func vjpConvSilu(n *node, d []*Tensor) []*Tensor {
	g := n.outputs[0].g
	for i := range d {
		if d[i] == nil {
			d[i] = g.Zeros(n.outputs[i].dtype, n.outputs[i].shape...)
		}
	}
	ins := append(append([]*Tensor(nil), n.inputs...), d[0], d[1])
	specs := make([]outSpec, 4)
	for i, in := range n.inputs {
		specs[i] = outSpec{in.dtype, in.shape.Clone()}
	}
	return g.addNode("ConvSiluGrad", ins, nil, nil, specs)
}

// RMSNorm is x / √(mean(x²) + eps) ⊙ w over the last axis in one fused
// float32 node, for x (…, D) and w (D). Its gradient is the RMSNormGrad
// node.
func RMSNorm(x, w *Tensor, eps float64) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("RMSNorm", x, w)
	if x.dtype != Float32 || w.dtype != Float32 {
		failf("RMSNorm: the fused kernels are float32, got %s and %s", x, w)
	}
	if x.Rank() < 1 || !w.shape.Equal(Shape{x.Dim(-1)}) || !(eps > 0) {
		failf("RMSNorm: x %s must be (…, D), w %s (D), eps %g positive", x, w, eps)
	}
	return g.addNode("RMSNorm", []*Tensor{x, w}, []attribute{{"eps", eps}}, nil, []outSpec{{Float32, x.shape.Clone()}})[0]
}

// vjpRMSNorm is the RMSNormGrad node: the gradients of x and w.
func vjpRMSNorm(n *node, d []*Tensor) []*Tensor {
	x, w := n.inputs[0], n.inputs[1]
	return x.g.addNode("RMSNormGrad", []*Tensor{x, w, d[0]}, []attribute{{"eps", n.attr("eps")}}, nil,
		[]outSpec{{Float32, x.shape.Clone()}, {Float32, w.shape.Clone()}})
}

// GatedRMSNorm is a mixer's output gate in one fused float32 node: the D·x
// skip, then the gated RMSNorm, gate first. For y and x (…, H·P) (the scan's
// output without the skip, and its input), the skip weights D (H), the gate
// z (…, H·P) and the norm weight w (H·P): q = y + D_h·x over head h's
// channels h·P…h·P+P−1, g = q ⊙ silu(z), out = g / √(mean(g²) + eps) ⊙ w
// over the last axis. Its gradient is the GatedRMSNormGrad node.
func GatedRMSNorm(y, x, D, z, w *Tensor, eps float64) (out *Tensor) {
	defer guard(y, &out)
	ins := []*Tensor{y, x, D, z, w}
	g := sameGraph("GatedRMSNorm", ins...)
	for _, t := range ins {
		if t.dtype != Float32 {
			failf("GatedRMSNorm: the fused kernels are float32, got %s", t)
		}
	}
	if y.Rank() < 1 || !x.shape.Equal(y.shape) || !z.shape.Equal(y.shape) || !w.shape.Equal(Shape{y.Dim(-1)}) ||
		D.Rank() != 1 || D.Dim(0) < 1 || y.Dim(-1)%D.Dim(0) != 0 || !(eps > 0) {
		failf("GatedRMSNorm: y %s, x %s and z %s must be (…, H·P), D %s (H), w %s (H·P), eps %g positive", y, x, z, D, w, eps)
	}
	return g.addNode("GatedRMSNorm", ins, []attribute{{"eps", eps}}, nil, []outSpec{{Float32, y.shape.Clone()}})[0]
}

// vjpGatedRMSNorm is the GatedRMSNormGrad node: the gradients of y, x, D, z
// and w.
func vjpGatedRMSNorm(n *node, d []*Tensor) []*Tensor {
	specs := make([]outSpec, len(n.inputs))
	for i, in := range n.inputs {
		specs[i] = outSpec{Float32, in.shape.Clone()}
	}
	ins := append(append([]*Tensor(nil), n.inputs...), d[0])
	return n.inputs[0].g.addNode("GatedRMSNormGrad", ins, []attribute{{"eps", n.attr("eps")}}, nil, specs)
}

// SoftmaxCrossEntropy is the cross-entropy of softmax(logits) at the
// targets in one fused float32 node: nll = log Σ_v exp(logits_v) −
// logits_target for logits (…, V) and targets (…) Int64, shaped like
// targets, and 0 where a target is outside 0…V−1 (the one-hot row of the
// standard graph is then all zeros). Its gradient is the
// SoftmaxCrossEntropyGrad node (targets get none).
func SoftmaxCrossEntropy(logits, targets *Tensor) (nll *Tensor) {
	defer guard(logits, &nll)
	g := sameGraph("SoftmaxCrossEntropy", logits, targets)
	if logits.dtype != Float32 || targets.dtype != Int64 {
		failf("SoftmaxCrossEntropy: logits %s must be float32 and targets %s int64", logits, targets)
	}
	if logits.Rank() < 1 || logits.Dim(-1) < 1 || !targets.shape.Equal(logits.shape[:logits.Rank()-1]) {
		failf("SoftmaxCrossEntropy: logits %s must be (…, V) and targets %s (…)", logits, targets)
	}
	return g.addNode("SoftmaxCrossEntropy", []*Tensor{logits, targets}, nil, nil, []outSpec{{Float32, targets.shape.Clone()}})[0]
}

// vjpSoftmaxCrossEntropy is the SoftmaxCrossEntropyGrad node:
// dlogits = dnll·(softmax(logits) − onehot(target)).
func vjpSoftmaxCrossEntropy(n *node, d []*Tensor) []*Tensor {
	logits, targets := n.inputs[0], n.inputs[1]
	dl := logits.g.addNode("SoftmaxCrossEntropyGrad", []*Tensor{logits, targets, d[0]}, nil, nil,
		[]outSpec{{Float32, logits.shape.Clone()}})[0]
	return []*Tensor{dl, nil}
}
