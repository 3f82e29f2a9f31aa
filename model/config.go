package model

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Config is a Mamba-2 language model's architecture. JSON field names follow
// the Mamba reference implementation's.
type Config struct {
	DModel    int `json:"d_model"`    // D: residual stream width
	Layers    int `json:"n_layer"`    // mixer blocks (no MLP blocks)
	DState    int `json:"d_state"`    // N: SSM state size per head
	HeadDim   int `json:"headdim"`    // P
	Expand    int `json:"expand"`     // d_inner = Expand·D
	DConv     int `json:"d_conv"`     // W: depthwise causal convolution width
	ChunkSize int `json:"chunk_size"` // Q: SSD chunk length
	VocabSize int `json:"vocab_size"` // V: padded to a multiple of 16
	NGroups   int `json:"ngroups"`    // G: B/C groups (only 1 is built)
	// PacketPositions K > 0 adds a learned embedding of each token's offset
	// in its packet (0 for <pkt>, capped at K−1, K−1 before the first
	// <pkt>) to the token embedding; PacketToken is the id of <pkt>. The
	// offset is a function of the tokens read so far, carried between
	// windows as the state "packet_position" (see PacketPositionState).
	// 0: off, the Mamba-2 of docs/mamba2.md.
	PacketPositions int `json:"packet_positions,omitempty"`
	PacketToken     int `json:"packet_token,omitempty"`
	// PrevPackets J > 0 adds copy logits: for each j in 1…J, the token that
	// followed the current token's offset in the j-th packet before the
	// current one (the counterpart of the token to predict; none where that
	// packet is shorter or its <pkt> lies more than PacketHistory tokens
	// back) gets a learned boost on its logit, a bias per (j, offset)
	// plus a gate read from the final hidden state: what header compression
	// would predict from. The last PacketHistory tokens are carried between
	// windows as the state "packet_history" (see PacketHistoryState). 0: off.
	PrevPackets   int `json:"prev_packets,omitempty"`
	PacketHistory int `json:"packet_history,omitempty"`
	// Labels n > 0 adds a learned embedding of the trace's label to every
	// position's input ("label.weight", (n+1, D); row 0 before any label
	// token was read), the label being the last label token read: ids
	// FirstLabel…FirstLabel+n−1. A trace states its label once, in its
	// first token; without this the recurrent state must carry it across
	// thousands of tokens. It is carried between windows as the state
	// "label" (see LabelState). 0: off.
	Labels     int `json:"labels,omitempty"`
	FirstLabel int `json:"first_label,omitempty"`
	// Kernels chooses how float32 graphs compute the SSD scan and the
	// decoding step: KernelsStandard ("" too) in standard ONNX ops, which any
	// ONNX runtime loads, or KernelsFused in the fused ops of netssm's own
	// domain (graph.SSDScan, graph.MixerStep), which only netssm's sessions
	// run. Float64 graphs always use standard ops. It does not change the
	// model: parameters and states are the same either way.
	Kernels string `json:"kernels,omitempty"`
}

// Kernel choices of Config.Kernels.
const (
	KernelsStandard = "standard"
	KernelsFused    = "fused"
)

// ParseKernels checks a --kernels value.
func ParseKernels(s string) (string, error) {
	switch s {
	case KernelsStandard, KernelsFused:
		return s, nil
	}
	return "", fmt.Errorf("kernels must be %s or %s, not %q", KernelsFused, KernelsStandard, s)
}

// Fused reports whether float32 graphs of c use the fused kernels.
func (c Config) Fused() bool { return c.Kernels == KernelsFused }

// Portable is c with the standard-op kernels.
func (c Config) Portable() Config {
	c.Kernels = ""
	return c
}

// DefaultVocab is the padded vocabulary the presets use: 256 byte values and
// 16 special and label ids, as the PyTorch reference benchmarks.
const DefaultVocab = 272

// VocabMultiple is what the vocabulary is padded to a multiple of.
const VocabMultiple = 16

var presets = map[string]Config{
	"tiny":  {DModel: 64, Layers: 2, DState: 16, HeadDim: 16, Expand: 2, DConv: 4, ChunkSize: 64, VocabSize: DefaultVocab, NGroups: 1},
	"small": {DModel: 256, Layers: 4, DState: 64, HeadDim: 32, Expand: 2, DConv: 4, ChunkSize: 128, VocabSize: DefaultVocab, NGroups: 1},
	"base":  {DModel: 512, Layers: 8, DState: 64, HeadDim: 64, Expand: 2, DConv: 4, ChunkSize: 256, VocabSize: DefaultVocab, NGroups: 1},
	// NetSSM's released configuration: about 90 M parameters.
	"paper": {DModel: 768, Layers: 24, DState: 128, HeadDim: 64, Expand: 2, DConv: 4, ChunkSize: 256, VocabSize: DefaultVocab, NGroups: 1},
}

// Presets lists the preset names, sorted.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Preset returns a named configuration (tiny, small, base, paper) with the
// default vocabulary; use WithVocab for a tokenizer's.
func Preset(name string) (Config, error) {
	c, ok := presets[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown model preset %q (one of %s)", name, strings.Join(Presets(), ", "))
	}
	return c, nil
}

// PadVocab rounds a tokenizer's vocabulary size up to a multiple of 16.
func PadVocab(n int) int { return (n + VocabMultiple - 1) / VocabMultiple * VocabMultiple }

// WithVocab returns c with the vocabulary of a tokenizer of n ids, padded.
func (c Config) WithVocab(n int) Config {
	c.VocabSize = PadVocab(n)
	return c
}

// DInner is Expand·DModel.
func (c Config) DInner() int { return c.Expand * c.DModel }

// Heads is H = d_inner / P.
func (c Config) Heads() int { return c.DInner() / c.HeadDim }

// ConvDim is the width of xBC: d_inner + 2·G·N.
func (c Config) ConvDim() int { return c.DInner() + 2*c.NGroups*c.DState }

// InProjWidth is 2·d_inner + 2·G·N + H.
func (c Config) InProjWidth() int { return 2*c.DInner() + 2*c.NGroups*c.DState + c.Heads() }

// Validate reports the first inconsistency of c.
func (c Config) Validate() error {
	var errs []error
	pos := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	pos("d_model", c.DModel)
	pos("n_layer", c.Layers)
	pos("d_state", c.DState)
	pos("headdim", c.HeadDim)
	pos("expand", c.Expand)
	pos("d_conv", c.DConv)
	pos("chunk_size", c.ChunkSize)
	pos("vocab_size", c.VocabSize)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if c.NGroups != 1 {
		return fmt.Errorf("ngroups %d: only 1 group is implemented", c.NGroups)
	}
	if c.DInner()%c.HeadDim != 0 {
		return fmt.Errorf("d_inner %d (expand %d · d_model %d) is not a multiple of headdim %d", c.DInner(), c.Expand, c.DModel, c.HeadDim)
	}
	if c.VocabSize%VocabMultiple != 0 {
		return fmt.Errorf("vocab_size %d is not a multiple of %d (use PadVocab)", c.VocabSize, VocabMultiple)
	}
	if c.PacketPositions < 0 || c.PacketPositions == 1 || c.PacketPositions > MaxPacketPositions {
		return fmt.Errorf("packet_positions %d: 0 (off) or 2…%d", c.PacketPositions, MaxPacketPositions)
	}
	if (c.PacketPositions > 0 || c.PrevPackets > 0) && (c.PacketToken < 0 || c.PacketToken >= c.VocabSize) {
		return fmt.Errorf("packet_token %d is outside the vocabulary of %d", c.PacketToken, c.VocabSize)
	}
	if c.PrevPackets < 0 || c.PrevPackets > MaxPrevPackets {
		return fmt.Errorf("prev_packets %d: 0 (off) or 1…%d", c.PrevPackets, MaxPrevPackets)
	}
	if c.PrevPackets > 0 && (c.PacketHistory < 2 || c.PacketHistory > MaxPacketHistory) {
		return fmt.Errorf("packet_history %d: 2…%d tokens with prev_packets", c.PacketHistory, MaxPacketHistory)
	}
	if c.Labels < 0 || (c.Labels > 0 && (c.FirstLabel < 0 || c.FirstLabel+c.Labels > c.VocabSize)) {
		return fmt.Errorf("labels %d from id %d: outside the vocabulary of %d", c.Labels, c.FirstLabel, c.VocabSize)
	}
	if c.Kernels != "" {
		if _, err := ParseKernels(c.Kernels); err != nil {
			return err
		}
	}
	if c.PrevPackets == 0 && c.PacketHistory != 0 {
		return fmt.Errorf("packet_history %d without prev_packets", c.PacketHistory)
	}
	return nil
}

// String is a one-line summary.
func (c Config) String() string {
	s := fmt.Sprintf("Mamba-2 D=%d layers=%d N=%d P=%d H=%d expand=%d W=%d Q=%d V=%d", c.DModel, c.Layers, c.DState, c.HeadDim, c.Heads(), c.Expand, c.DConv, c.ChunkSize, c.VocabSize)
	if c.PacketPositions > 0 {
		s += fmt.Sprintf(" packet-positions=%d", c.PacketPositions)
	}
	if c.PrevPackets > 0 {
		s += fmt.Sprintf(" prev-packets=%d history=%d", c.PrevPackets, c.PacketHistory)
	}
	if c.Labels > 0 {
		s += fmt.Sprintf(" label-embedding=%d", c.Labels)
	}
	return s
}

// ParamShape is one parameter's state-dict name and shape.
type ParamShape struct {
	Name  string
	Shape []int
}

// Size is the number of elements.
func (p ParamShape) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// LayerPrefix is the scope of layer i's parameters and states: "layers.i".
func LayerPrefix(i int) string { return fmt.Sprintf("layers.%d", i) }

// ParamShapes lists every parameter in the fixed order the graphs declare
// them: embedding.weight, then per layer norm.weight and the mixer's
// in_proj.weight, conv1d.weight, conv1d.bias, dt_bias, A_log, D, norm.weight,
// out_proj.weight, then norm_f.weight. The embedding is tied to the output.
// With packet positions, packet_position.weight (K, D) follows the embedding,
// then with labels label.weight (n+1, D); with previous packets, copy.bias (J, PacketHistory) and copy.gate (J, D)
// come last.
func ParamShapes(c Config) []ParamShape {
	D, di, H, C, W := c.DModel, c.DInner(), c.Heads(), c.ConvDim(), c.DConv
	ps := []ParamShape{{"embedding.weight", []int{c.VocabSize, D}}}
	if c.PacketPositions > 0 {
		ps = append(ps, ParamShape{PacketPositionParam, []int{c.PacketPositions, D}})
	}
	if c.Labels > 0 {
		ps = append(ps, ParamShape{LabelParam, []int{c.Labels + 1, D}})
	}
	for i := range c.Layers {
		l := LayerPrefix(i)
		m := l + ".mixer."
		ps = append(ps,
			ParamShape{l + ".norm.weight", []int{D}},
			ParamShape{m + "in_proj.weight", []int{c.InProjWidth(), D}},
			ParamShape{m + "conv1d.weight", []int{C, W}},
			ParamShape{m + "conv1d.bias", []int{C}},
			ParamShape{m + "dt_bias", []int{H}},
			ParamShape{m + "A_log", []int{H}},
			ParamShape{m + "D", []int{H}},
			ParamShape{m + "norm.weight", []int{di}},
			ParamShape{m + "out_proj.weight", []int{D, di}},
		)
	}
	ps = append(ps, ParamShape{"norm_f.weight", []int{D}})
	if c.PrevPackets > 0 {
		ps = append(ps, ParamShape{CopyBiasParam, []int{c.PrevPackets, c.PacketHistory}}, ParamShape{CopyGateParam, []int{c.PrevPackets, D}})
	}
	return ps
}

// ParamCount is the number of parameters (the tied embedding counted once).
func ParamCount(c Config) int64 {
	var n int64
	for _, p := range ParamShapes(c) {
		n += int64(p.Size())
	}
	return n
}

// StateNames lists the recurrent-state graph inputs and the matching outputs,
// layer by layer: conv_state then ssm_state; then, with packet positions,
// PacketPositionState; then, with previous packets, PacketHistoryState; then,
// with labels, LabelState.
func StateNames(c Config) (in, out []string) {
	for i := range c.Layers {
		for _, s := range []string{"conv_state", "ssm_state"} {
			n := LayerPrefix(i) + "." + s
			in = append(in, n)
			out = append(out, n+NextSuffix)
		}
	}
	if c.PacketPositions > 0 {
		in = append(in, PacketPositionState)
		out = append(out, PacketPositionState+NextSuffix)
	}
	if c.PrevPackets > 0 {
		in = append(in, PacketHistoryState)
		out = append(out, PacketHistoryState+NextSuffix)
	}
	if c.Labels > 0 {
		in = append(in, LabelState)
		out = append(out, LabelState+NextSuffix)
	}
	return in, out
}

// MaxPacketPositions bounds Config.PacketPositions.
const MaxPacketPositions = 4096

// PacketPositionParam is the packet-position embedding's parameter name.
const PacketPositionParam = "packet_position.weight"

// PacketPositionState is the state (B, 1) that carries the packet offset of
// the last token read into the next window, in the graphs' float type: 0
// when nothing was read (the all-zero state of a fresh sequence), else 1 +
// that token's offset (1…K). Zero states stay the start of a sequence.
const PacketPositionState = "packet_position"

// MaxPrevPackets bounds Config.PrevPackets, MaxPacketHistory
// Config.PacketHistory.
const (
	MaxPrevPackets   = 8
	MaxPacketHistory = 1 << 16
)

// The copy logits' parameters: CopyBiasParam (J, PacketHistory) is the boost
// of the j-th previous packet's token by offset, CopyGateParam (J, D) reads a
// further boost from the final (normalised) hidden state.
const (
	CopyBiasParam = "copy.bias"
	CopyGateParam = "copy.gate"
)

// PacketHistoryState is the state (B, PacketHistory) that carries the last
// tokens read into the next window, in the graphs' float type, oldest first:
// token id + 1, and 0 where nothing was read (so the all-zero state is a
// fresh sequence).
const PacketHistoryState = "packet_history"

// LabelParam is the label embedding's parameter name.
const LabelParam = "label.weight"

// LabelState is the state (B, 1) that carries the trace's label into the
// next window, in the graphs' float type: 0 before any label token was read
// (the all-zero state of a fresh sequence), else 1 + the label's index.
const LabelState = "label"

// NextSuffix turns a state input's name into its output's.
const NextSuffix = ".next"

// StateShapes gives the shape of each state of StateNames for batch B:
// conv (B, conv_dim, W), ssm (B, H, P, N).
func StateShapes(c Config, B int) [][]int {
	var s [][]int
	for range c.Layers {
		s = append(s, []int{B, c.ConvDim(), c.DConv}, []int{B, c.Heads(), c.HeadDim, c.DState})
	}
	if c.PacketPositions > 0 {
		s = append(s, []int{B, 1})
	}
	if c.PrevPackets > 0 {
		s = append(s, []int{B, c.PacketHistory})
	}
	if c.Labels > 0 {
		s = append(s, []int{B, 1})
	}
	return s
}
