package model

import (
	"fmt"
	"math"
)

// This file is the pure-Go float64 reference of the language model: the
// sequential recurrence of docs/mamba2.md, one token at a time, small and
// slow on purpose. It is the tests' oracle for every graph and nothing else
// uses it.

// States64 holds the recurrent states of a batch in float64, one flat
// row-major slice per layer: Conv[i] is layer i's conv_state (B, conv_dim, W),
// SSM[i] its ssm_state (B, H, P, N); Packet is the packet-position state
// (B) with packet positions, else nil; History is the packet-history state
// (B, PacketHistory) with previous packets, else nil; Label the label state
// (B) with labels, else nil.
type States64 struct {
	Conv    [][]float64
	SSM     [][]float64
	Packet  []float64
	History []float64
	Label   []float64
}

// ZeroStates64 is the all-zero state of a batch of B sequences.
func ZeroStates64(c Config, B int) States64 {
	var s States64
	for range c.Layers {
		s.Conv = append(s.Conv, make([]float64, B*c.ConvDim()*c.DConv))
		s.SSM = append(s.SSM, make([]float64, B*c.Heads()*c.HeadDim*c.DState))
	}
	if c.PacketPositions > 0 {
		s.Packet = make([]float64, B)
	}
	if c.PrevPackets > 0 {
		s.History = make([]float64, B*c.PacketHistory)
	}
	if c.Labels > 0 {
		s.Label = make([]float64, B)
	}
	return s
}

// Clone is a deep copy.
func (s States64) Clone() States64 {
	var o States64
	for i := range s.Conv {
		o.Conv = append(o.Conv, append([]float64(nil), s.Conv[i]...))
		o.SSM = append(o.SSM, append([]float64(nil), s.SSM[i]...))
	}
	if s.Packet != nil {
		o.Packet = append([]float64(nil), s.Packet...)
	}
	if s.History != nil {
		o.History = append([]float64(nil), s.History...)
	}
	if s.Label != nil {
		o.Label = append([]float64(nil), s.Label...)
	}
	return o
}

// Flat lists the states in StateNames order (conv, ssm per layer).
func (s States64) Flat() [][]float64 {
	var f [][]float64
	for i := range s.Conv {
		f = append(f, s.Conv[i], s.SSM[i])
	}
	if s.Packet != nil {
		f = append(f, s.Packet)
	}
	if s.History != nil {
		f = append(f, s.History)
	}
	if s.Label != nil {
		f = append(f, s.Label)
	}
	return f
}

// ReferenceForward runs the model over ids (B rows of L tokens, row-major)
// from the states st (not modified; ZeroStates64 for a fresh start), one token
// at a time by the recurrence, and returns the logits (B, L, V) and the
// states after the last token.
func ReferenceForward(c Config, p map[string][]float64, ids []int64, B, L int, st States64) (logits []float64, next States64, err error) {
	if err := c.Validate(); err != nil {
		return nil, States64{}, err
	}
	if err := CheckParams64(c, p); err != nil {
		return nil, States64{}, err
	}
	if len(ids) != B*L {
		return nil, States64{}, fmt.Errorf("reference forward: %d ids for batch %d × length %d", len(ids), B, L)
	}
	convN, ssmN := c.ConvDim()*c.DConv, c.Heads()*c.HeadDim*c.DState
	if len(st.Conv) != c.Layers || len(st.SSM) != c.Layers {
		return nil, States64{}, fmt.Errorf("reference forward: states for %d layers, the model has %d", len(st.Conv), c.Layers)
	}
	for i := range st.Conv {
		if len(st.Conv[i]) != B*convN || len(st.SSM[i]) != B*ssmN {
			return nil, States64{}, fmt.Errorf("reference forward: layer %d states hold %d and %d values, batch %d needs %d and %d", i, len(st.Conv[i]), len(st.SSM[i]), B, B*convN, B*ssmN)
		}
	}
	if K := c.PacketPositions; K > 0 && len(st.Packet) != B {
		return nil, States64{}, fmt.Errorf("reference forward: %d packet-position states for batch %d", len(st.Packet), B)
	}
	if J := c.PrevPackets; J > 0 && len(st.History) != B*c.PacketHistory {
		return nil, States64{}, fmt.Errorf("reference forward: %d packet-history values for batch %d × %d", len(st.History), B, c.PacketHistory)
	}
	if c.Labels > 0 && len(st.Label) != B {
		return nil, States64{}, fmt.Errorf("reference forward: %d label states for batch %d", len(st.Label), B)
	}
	next = st.Clone()
	V, D := c.VocabSize, c.DModel
	E := p["embedding.weight"]
	logits = make([]float64, B*L*V)
	for b := range B {
		for t := range L {
			id := ids[b*L+t]
			if id < 0 || id >= int64(V) {
				return nil, States64{}, fmt.Errorf("reference forward: token id %d outside the vocabulary of %d", id, V)
			}
			x := append([]float64(nil), E[int(id)*D:(int(id)+1)*D]...)
			if K := c.PacketPositions; K > 0 {
				// The offset in the packet, by the definition: 0 at <pkt>,
				// one more per token after it, capped; K−1 before any.
				off, last := K-1, int(next.Packet[b])
				if id == int64(c.PacketToken) {
					off = 0
				} else if last > 0 {
					off = min(last, K-1)
				}
				next.Packet[b] = float64(off + 1)
				pe := p[PacketPositionParam][off*D : (off+1)*D]
				for i := range x {
					x[i] += pe[i]
				}
			}
			if n := c.Labels; n > 0 {
				// The trace's label: the last label token read, 0 before any.
				if id >= int64(c.FirstLabel) && id < int64(c.FirstLabel+n) {
					next.Label[b] = float64(id) - float64(c.FirstLabel) + 1
				}
				le := p[LabelParam][int(next.Label[b])*D : (int(next.Label[b])+1)*D]
				for i := range x {
					x[i] += le[i]
				}
			}
			var prev []int64 // the previous packets' tokens at this offset (−1: none)
			var off int
			if J := c.PrevPackets; J > 0 {
				Hn := c.PacketHistory
				hist := next.History[b*Hn : (b+1)*Hn]
				prev, off = refPrevPacketTokens(hist, id, J, c.PacketToken)
				copy(hist, hist[1:])
				hist[Hn-1] = float64(id + 1)
			}
			for l := range c.Layers {
				pre := LayerPrefix(l)
				h := refRMSNorm(x, p[pre+".norm.weight"])
				out := refMixerStep(c, p, pre+".mixer.", h,
					next.Conv[l][b*convN:(b+1)*convN], next.SSM[l][b*ssmN:(b+1)*ssmN])
				for i := range x {
					x[i] += out[i]
				}
			}
			h := refRMSNorm(x, p["norm_f.weight"])
			row := logits[(b*L+t)*V : (b*L+t+1)*V]
			for v := range V {
				var s float64
				for i := range D {
					s += h[i] * E[v*D+i]
				}
				row[v] = s
			}
			for j, tok := range prev {
				// copy logits: bias[j, off] + h·gate[j] on the copied token
				if tok < 0 {
					continue
				}
				boost := p[CopyBiasParam][j*c.PacketHistory+off]
				for i := range D {
					boost += h[i] * p[CopyGateParam][j*D+i]
				}
				row[tok] += boost
			}
		}
	}
	return logits, next, nil
}

// refPrevPacketTokens is, by the definition, the token that followed the
// current token's offset in each of the J packets before its own, the
// counterpart of the token the current one predicts (−1 for none), from
// hist (the last H tokens, id + 1, 0 for none) and the current token id, and
// that offset. Only packets whose <pkt> is among the last H tokens count.
func refPrevPacketTokens(hist []float64, id int64, J, pkt int) (prev []int64, offset int) {
	seq := make([]int64, 0, len(hist)+1) // the H tokens before and the current one
	for _, h := range hist {
		seq = append(seq, int64(h)-1)
	}
	seq = append(seq, id)
	lastPkt := func(before int) int {
		for s := before - 1; s >= 0; s-- {
			if seq[s] == int64(pkt) {
				return s
			}
		}
		return -1
	}
	out := make([]int64, J)
	for j := range out {
		out[j] = -1
	}
	q := len(seq) - 1
	s0 := lastPkt(q + 1)
	if s0 < 0 {
		return out, 0
	}
	off, later := q-s0, s0
	for j := range J {
		sj := lastPkt(later)
		if sj < 0 {
			break
		}
		if sj+off+1 <= later {
			out[j] = seq[sj+off+1] // the token after the same offset there
		}
		later = sj
	}
	return out, off
}

// ReferenceLoss is the masked next-token cross-entropy of ReferenceForward's
// logits in nats per counted token: Σ mask·(−log softmax(logits)[target]) /
// max(Σ mask, 1), as MaskedCrossEntropy defines it.
func ReferenceLoss(c Config, p map[string][]float64, ids, targets []int64, mask []float64, B, L int, st States64) (float64, error) {
	logits, _, err := ReferenceForward(c, p, ids, B, L, st)
	if err != nil {
		return 0, err
	}
	if len(targets) != B*L || len(mask) != B*L {
		return 0, fmt.Errorf("reference loss: %d targets and %d mask values for %d positions", len(targets), len(mask), B*L)
	}
	V := c.VocabSize
	var sum, count float64
	for i := range B * L {
		row := logits[i*V : (i+1)*V]
		m := math.Inf(-1)
		for _, v := range row {
			m = max(m, v)
		}
		var z float64
		for _, v := range row {
			z += math.Exp(v - m)
		}
		sum += mask[i] * (m + math.Log(z) - row[targets[i]])
		count += mask[i]
	}
	return sum / max(count, 1), nil
}

// refMixerStep is one decoding step of a mixer (docs/mamba2.md, "Decoding
// one token") for one sequence: u is the normed input (D); conv (conv_dim·W) and
// ssm (H·P·N) are updated in place; it returns out_proj's output (D).
func refMixerStep(c Config, p map[string][]float64, m string, u []float64, conv, ssm []float64) []float64 {
	D, di, H, P, N, W, C := c.DModel, c.DInner(), c.Heads(), c.HeadDim, c.DState, c.DConv, c.ConvDim()
	// 1. zxbcdt = in_proj(u), split [z, xBC, dt_raw].
	win := p[m+"in_proj.weight"]
	zx := make([]float64, c.InProjWidth())
	for o := range zx {
		var s float64
		for i := range D {
			s += win[o*D+i] * u[i]
		}
		zx[o] = s
	}
	z, xBCraw, dtRaw := zx[:di], zx[di:di+C], zx[di+C:]
	// 2. Shift the conv state left, append xBC, convolve, silu.
	cw, cb := p[m+"conv1d.weight"], p[m+"conv1d.bias"]
	xBC := make([]float64, C)
	for ch := range C {
		row := conv[ch*W : (ch+1)*W]
		copy(row, row[1:])
		row[W-1] = xBCraw[ch]
		s := cb[ch]
		for k := range W {
			s += row[k] * cw[ch*W+k]
		}
		xBC[ch] = refSilu(s)
	}
	// 3. x (H, P), Bm (N), Cm (N); dt = softplus(dt_raw + dt_bias); dA = exp(dt·A).
	x, Bm, Cm := xBC[:di], xBC[di:di+N], xBC[di+N:]
	y := make([]float64, di)
	dtb, alog, Dp := p[m+"dt_bias"], p[m+"A_log"], p[m+"D"]
	for h := range H {
		dt := refSoftplus(dtRaw[h] + dtb[h])
		dA := math.Exp(-dt * math.Exp(alog[h]))
		for pi := range P {
			xv := x[h*P+pi]
			s := ssm[(h*P+pi)*N : (h*P+pi+1)*N]
			var acc float64
			for n := range N {
				s[n] = s[n]*dA + dt*xv*Bm[n]
				acc += s[n] * Cm[n]
			}
			y[h*P+pi] = acc + Dp[h]*xv
		}
	}
	// 4. Gated RMSNorm, gate first, then out_proj.
	for i := range y {
		y[i] *= refSilu(z[i])
	}
	y = refRMSNorm(y, p[m+"norm.weight"])
	wout := p[m+"out_proj.weight"]
	out := make([]float64, D)
	for o := range D {
		var s float64
		for i := range di {
			s += wout[o*di+i] * y[i]
		}
		out[o] = s
	}
	return out
}

// normEps is the epsilon of every RMSNorm.
const normEps = 1e-5

func refRMSNorm(x, w []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+normEps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * r * w[i]
	}
	return out
}

func refSilu(x float64) float64 { return x / (1 + math.Exp(-x)) }

func refSoftplus(x float64) float64 { return max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))) }
