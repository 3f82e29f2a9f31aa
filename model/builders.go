package model

import (
	"fmt"

	"github.com/netssm/netssm/graph"
)

// Kinds of graph, also the graphs' names.
const (
	GraphForward = "forward"
	GraphPrefill = "prefill"
	GraphStep    = "step"
)

// NewForwardGraph builds the parallel forward pass for batch B and length L
// in float type ft: inputs ids (B, L), the states and (unless serialised with
// initializers) the parameters; outputs logits (B, L, V) and the next states.
func NewForwardGraph(c Config, B, L int, ft graph.DType) (*graph.Graph, error) {
	return build(GraphForward, c, B, L, ft)
}

// NewPrefillGraph builds the prefill for batch B and prompt length L: like
// the forward pass, but only the last position's logits (B, V) come out.
func NewPrefillGraph(c Config, B, L int, ft graph.DType) (*graph.Graph, error) {
	return build(GraphPrefill, c, B, L, ft)
}

// NewStepGraph builds one decoding step for batch B: inputs ids (B) and the
// states; outputs logits (B, V) and the next states.
func NewStepGraph(c Config, B int, ft graph.DType) (*graph.Graph, error) {
	return build(GraphStep, c, B, 1, ft)
}

func build(kind string, c Config, B, L int, ft graph.DType) (*graph.Graph, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if B <= 0 || L <= 0 {
		return nil, fmt.Errorf("%s graph: batch %d and length %d must be positive", kind, B, L)
	}
	g := graph.New(kind, graph.WithFloat(ft))
	m, err := DeclareParams(g, c)
	if err != nil {
		return nil, err
	}
	states := DeclareStates(g, c, B)
	var logits *graph.Tensor
	var next States
	switch kind {
	case GraphStep:
		ids := g.Input(InIDs, graph.Int64, B)
		logits, next = m.Step(ids, states)
	default:
		ids := g.Input(InIDs, graph.Int64, B, L)
		if kind == GraphPrefill {
			logits, next = m.LastLogits(ids, states)
		} else {
			logits, next = m.Forward(ids, states)
		}
	}
	g.Output(OutLogits, logits)
	OutputStates(g, c, next)
	if err := g.Err(); err != nil {
		return nil, fmt.Errorf("building the %s graph of %s: %w", kind, c, err)
	}
	return g, nil
}
