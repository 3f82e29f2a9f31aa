package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/netssm/netssm/arrowdata"
	"github.com/netssm/netssm/tokenizer"
	"github.com/netssm/netssm/train"
)

// subset is a TraceStore over some traces of another.
type subset struct {
	store   train.TraceStore
	indices []int
}

func (s subset) NumTraces() int                      { return len(s.indices) }
func (s subset) TraceTokens(i int) ([]uint16, error) { return s.store.TraceTokens(s.indices[i]) }

// openTrainingData opens --data (and --val), or splits --data by trace with
// --val-frac; the split is recorded in cfg so a resume uses the same one.
func openTrainingData(cfg *train.RunConfig) (train.Data, tokenizer.Spec, error) {
	ds, err := arrowdata.Open(cfg.Data)
	if err != nil {
		return train.Data{}, tokenizer.Spec{}, err
	}
	spec := ds.Spec()
	if ds.NumTraces() == 0 {
		return train.Data{}, spec, fmt.Errorf("%s holds no traces: tokenize some captures first", cfg.Data)
	}
	if cfg.Val != "" {
		val, err := arrowdata.Open(cfg.Val)
		if err != nil {
			return train.Data{}, spec, err
		}
		vs := val.Spec()
		if err := specsCompatible(spec, vs); err != nil {
			return train.Data{}, spec, fmt.Errorf("%s and %s were tokenized differently: %v; tokenize both with the same options", cfg.Data, cfg.Val, err)
		}
		return train.Data{Train: ds, Val: val}, spec, nil
	}
	if cfg.TrainTraces == nil {
		n := ds.NumTraces()
		perm := rand.New(rand.NewPCG(cfg.Seed, 0x5eed)).Perm(n)
		nv := int(float64(n)*cfg.ValFrac + 0.5)
		if cfg.ValFrac > 0 && nv == 0 && n > 1 {
			nv = 1
		}
		if nv >= n {
			return train.Data{}, spec, fmt.Errorf("%s has %d traces: too few to hold out %.0f%% for validation; lower --val-frac or pass --val", cfg.Data, n, 100*cfg.ValFrac)
		}
		cfg.ValTraces, cfg.TrainTraces = perm[:nv], perm[nv:]
	}
	d := train.Data{Train: subset{ds, cfg.TrainTraces}}
	if len(cfg.ValTraces) > 0 {
		d.Val = subset{ds, cfg.ValTraces}
	}
	return d, spec, nil
}

// specsCompatible says whether two datasets can be mixed: the same token
// layout (labels may differ only when one is a prefix of the other).
func specsCompatible(a, b tokenizer.Spec) error {
	aj, bj := a, b
	aj.Labels, bj.Labels = nil, nil
	x, _ := json.Marshal(aj)
	y, _ := json.Marshal(bj)
	if !bytes.Equal(x, y) {
		return fmt.Errorf("tokenizer specs differ (%s vs %s)", x, y)
	}
	for i := range min(len(a.Labels), len(b.Labels)) {
		if a.Labels[i] != b.Labels[i] {
			return fmt.Errorf("label %d is %q in one and %q in the other", i, a.Labels[i], b.Labels[i])
		}
	}
	return nil
}

// checkSpecMatches refuses to resume a run on data tokenized differently.
func checkSpecMatches(saved json.RawMessage, spec tokenizer.Spec, path string) error {
	old, err := tokenizer.ParseSpec(saved)
	if err != nil {
		return fmt.Errorf("the run's saved tokenizer spec is unreadable: %w", err)
	}
	if err := specsCompatible(old, spec); err != nil {
		return fmt.Errorf("%s does not match the run's tokenizer: %v", path, err)
	}
	if len(old.Labels) != len(spec.Labels) {
		return fmt.Errorf("%s has labels %v, the run was trained with %v", path, spec.Labels, old.Labels)
	}
	return nil
}
