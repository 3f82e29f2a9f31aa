package infer

import (
	"fmt"
	"slices"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
)

// NewMamba2 returns the ONNX-backed Model of a Mamba-2 configuration and its
// float32 parameters (state-dict names): a step graph is built for each batch
// size asked for, with the parameters as initializers, and the prompt is run
// once through the chunked prefill graph built for its length.
func NewMamba2(c model.Config, params map[string][]float32, so ort.SessionOptions) (*ONNXModel, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := model.CheckParams(c, params); err != nil {
		return nil, err
	}
	in, out := model.StateNames(c)
	sig := StepSignature{Token: model.InIDs, Logits: model.OutLogits}
	for i := range in {
		// The layers' conv and SSM states come first; with fused kernels
		// only MixerStep reads and writes them.
		inPlace := c.Fused() && i < 2*c.Layers
		sig.States = append(sig.States, StatePair{In: in[i], Out: out[i], InPlace: inPlace})
	}
	init := graph.Initializers(model.Values(params))
	m := &ONNXModel{Logits: c.VocabSize, Signature: sig, Session: so}
	m.StepGraph = func(batch int) ([]byte, error) {
		g, err := model.NewStepGraph(c, batch, graph.Float32)
		if err != nil {
			return nil, err
		}
		return g.Serialize(init)
	}
	m.PrefillFunc = func(prompt []int) ([]float32, State, error) {
		return mamba2Prefill(c, init, so, prompt)
	}
	return m, nil
}

// mamba2Prefill runs the chunked prefill graph once over the prompt from
// zero state and returns the last logits and the final states.
func mamba2Prefill(c model.Config, init graph.BuildOption, so ort.SessionOptions, prompt []int) ([]float32, State, error) {
	L := len(prompt)
	if L == 0 {
		return nil, nil, fmt.Errorf("empty prompt")
	}
	g, err := model.NewPrefillGraph(c, 1, L, graph.Float32)
	if err != nil {
		return nil, nil, err
	}
	onnx, err := g.Serialize(init)
	if err != nil {
		return nil, nil, fmt.Errorf("serialising the prefill graph: %w", err)
	}
	sess, err := ort.NewSession(onnx, so)
	if err != nil {
		return nil, nil, err
	}
	defer sess.Close()
	ids := alignedSlice[int64](L)
	for i, t := range prompt {
		ids[i] = int64(t)
	}
	feeds := map[string]*ort.Tensor{model.InIDs: ort.NewTensor([]int64{1, int64(L)}, ids)}
	in, out := model.StateNames(c)
	for i, shape := range model.StateShapes(c, 1) {
		n := 1
		sh := make([]int64, len(shape))
		for k, d := range shape {
			n *= d
			sh[k] = int64(d)
		}
		feeds[in[i]] = ort.NewTensor(sh, alignedSlice[float32](n))
	}
	res, err := sess.Run(feeds)
	if err != nil {
		return nil, nil, fmt.Errorf("prefill of %d tokens: %w", L, err)
	}
	st := make(State, len(out))
	for i, name := range out {
		st[i] = slices.Clone(res[name].Float32())
	}
	return res[model.OutLogits].Float32(), st, nil
}
