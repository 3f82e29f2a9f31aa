package train

import (
	"fmt"

	"github.com/netssm/netssm/graph"
)

// AdamW holds the optimiser's hyper-parameters. The learning rate is not here:
// it changes every step and is a graph input.
type AdamW struct {
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64 // decoupled, applied where Decays says
	ClipNorm     float64 // global gradient-norm clip; 0 disables
	// Decays says which parameters weight decay applies to (the model's
	// rule, model.WeightDecays); nil: every matrix (rank ≥ 2).
	Decays func(param string, rank int) bool `json:"-"`
}

// DefaultAdamW is AdamW as NetSSM and nanoGPT use it.
var DefaultAdamW = AdamW{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, ClipNorm: 1.0}

// LossBuilder adds a model's forward pass and loss to g. It receives the token
// window (ids, next-token targets, target mask) and returns the scalar loss,
// the recurrent-state inputs it declared (fed by the loop, carried across
// windows), the matching state outputs, and the parameters (declared with
// g.Param) in a fixed order.
type LossBuilder func(g *graph.Graph, ids, targets, mask *graph.Tensor) (loss *graph.Tensor, statesIn, statesOut, params []*graph.Tensor)

// Names of the train-step graph's inputs and outputs besides parameters and
// states. A parameter named P has moments "adam.m.P", "adam.v.P" as inputs and
// "next.P", "next.adam.m.P", "next.adam.v.P" as outputs; a state input S has
// the output named by the loss builder.
const (
	InIDs      = "ids"
	InTargets  = "targets"
	InMask     = "mask"
	InLR       = "lr"
	InBiasCor1 = "adam.bias_correction1" // 1 − β₁ᵗ
	InBiasCor2 = "adam.bias_correction2" // 1 − β₂ᵗ
	OutLoss    = "loss"
	// OutTokenLoss is a validation graph's per-token loss (B, L), present
	// instead of OutLoss when the loss builder returns one loss per token.
	OutTokenLoss = "token_loss"
	OutNorm      = "grad_norm"
	nextPrefix   = "next."
	mPrefix      = "adam.m."
	vPrefix      = "adam.v."
)

// StepGraph describes a built train-step graph.
type StepGraph struct {
	Model     []byte   // serialized ONNX
	Params    []string // parameter names, in the loss builder's order
	Shapes    [][]int64
	Decay     []bool   // whether weight decay applies
	StatesIn  []string // recurrent-state input names
	StatesOut []string // and the matching outputs
	StateDims [][]int64
	Nodes     int
}

// BuildTrainStep builds one optimiser step: forward, loss, backward, global
// norm clipping and AdamW, for a batch of B windows of L tokens. One Run of
// the result is one step; parameters and moments go in and their next values
// come out, so the loop only swaps buffers.
func BuildTrainStep(name string, B, L int, lossFn LossBuilder, opt AdamW) (sg *StepGraph, err error) {
	g := graph.New(name, graph.WithFloat(graph.Float32))
	ids := g.Input(InIDs, graph.Int64, B, L)
	targets := g.Input(InTargets, graph.Int64, B, L)
	mask := g.Input(InMask, graph.Float32, B, L)
	lr := g.Input(InLR, graph.Float32, 1)
	bc1 := g.Input(InBiasCor1, graph.Float32, 1)
	bc2 := g.Input(InBiasCor2, graph.Float32, 1)

	loss, statesIn, statesOut, params := lossFn(g, ids, targets, mask)
	if g.Err() != nil {
		return nil, fmt.Errorf("building the loss: %w", g.Err())
	}
	grads, err := graph.Gradients(loss, params)
	if err != nil {
		return nil, fmt.Errorf("differentiating the loss: %w", err)
	}
	g.Output(OutLoss, graph.Reshape(loss, 1)) // rank 1: onnxruntime_go cannot hold rank-0 values

	// Global gradient norm and the clip factor min(1, c/(‖g‖+1e-6)).
	var sq *graph.Tensor
	for _, gr := range grads {
		s := graph.ReduceSum(graph.Square(gr))
		if sq == nil {
			sq = s
		} else {
			sq = graph.Add(sq, s)
		}
	}
	norm := graph.Sqrt(sq)
	g.Output(OutNorm, graph.Reshape(norm, 1))
	scale := g.Scalar(1)
	if opt.ClipNorm > 0 {
		scale = graph.Min(scale, graph.Div(g.Scalar(opt.ClipNorm), norm.AddScalar(1e-6)))
	}

	sg = &StepGraph{}
	for i, p := range params {
		gr := graph.Mul(grads[i], scale)
		m := g.Input(mPrefix+p.Name(), graph.Float32, p.Shape()...)
		v := g.Input(vPrefix+p.Name(), graph.Float32, p.Shape()...)
		m1 := graph.Add(m.MulScalar(opt.Beta1), gr.MulScalar(1-opt.Beta1))
		v1 := graph.Add(v.MulScalar(opt.Beta2), graph.Square(gr).MulScalar(1-opt.Beta2))
		update := graph.Div(graph.Div(m1, bc1), graph.Sqrt(graph.Div(v1, bc2)).AddScalar(opt.Eps))
		decay := opt.decays(p)
		if decay && opt.WeightDecay > 0 {
			update = graph.Add(update, p.MulScalar(opt.WeightDecay))
		}
		p1 := graph.Sub(p, graph.Mul(update, lr))
		g.Output(nextPrefix+p.Name(), p1)
		g.Output(nextPrefix+mPrefix+p.Name(), m1)
		g.Output(nextPrefix+vPrefix+p.Name(), v1)
		sg.Params = append(sg.Params, p.Name())
		sg.Shapes = append(sg.Shapes, p.Shape().Int64s())
		sg.Decay = append(sg.Decay, decay)
	}
	for i, s := range statesIn {
		sg.StatesIn = append(sg.StatesIn, s.Name())
		sg.StatesOut = append(sg.StatesOut, statesOut[i].Name())
		sg.StateDims = append(sg.StateDims, s.Shape().Int64s())
	}
	sg.Nodes = g.NumNodes()
	model, err := g.Serialize()
	if err != nil {
		return nil, fmt.Errorf("serialising the train step: %w", err)
	}
	sg.Model = model
	return sg, nil
}

// decays says whether weight decay applies to parameter p.
func (o AdamW) decays(p *graph.Tensor) bool {
	if o.Decays == nil {
		return p.Rank() >= 2
	}
	return o.Decays(p.Name(), p.Rank())
}

// NextName is the output carrying a parameter's or moment's next value.
func NextName(input string) string { return nextPrefix + input }

// MomentNames are the first- and second-moment input names of a parameter.
func MomentNames(param string) (m, v string) { return mPrefix + param, vPrefix + param }

// EvalGraph describes a forward-only loss graph used for validation.
type EvalGraph struct {
	Model     []byte
	PerToken  bool // the loss is OutTokenLoss, one value per target
	Params    []string
	StatesIn  []string
	StatesOut []string
	StateDims [][]int64
}

// BuildEvalStep builds the loss of one window without gradients: the same
// inputs as the train step minus the optimiser's, outputs the loss and the
// carried-out states. A loss builder that returns a (B, L) loss (one value
// per target, such as model.TokenLoss) gives a graph whose OutTokenLoss
// output the Validator reads token by token.
func BuildEvalStep(name string, B, L int, lossFn LossBuilder) (*EvalGraph, error) {
	g := graph.New(name, graph.WithFloat(graph.Float32))
	ids := g.Input(InIDs, graph.Int64, B, L)
	targets := g.Input(InTargets, graph.Int64, B, L)
	mask := g.Input(InMask, graph.Float32, B, L)
	loss, statesIn, statesOut, params := lossFn(g, ids, targets, mask)
	perToken := loss.Rank() == 2
	if perToken {
		g.Output(OutTokenLoss, loss)
	} else {
		g.Output(OutLoss, graph.Reshape(loss, 1))
	}
	if g.Err() != nil {
		return nil, fmt.Errorf("building the validation graph: %w", g.Err())
	}
	eg := &EvalGraph{PerToken: perToken}
	for _, p := range params {
		eg.Params = append(eg.Params, p.Name())
	}
	for i, s := range statesIn {
		eg.StatesIn = append(eg.StatesIn, s.Name())
		eg.StatesOut = append(eg.StatesOut, statesOut[i].Name())
		eg.StateDims = append(eg.StateDims, s.Shape().Int64s())
	}
	model, err := g.Serialize()
	if err != nil {
		return nil, fmt.Errorf("serialising the validation graph: %w", err)
	}
	eg.Model = model
	return eg, nil
}
