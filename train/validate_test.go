package train_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
	"github.com/netssm/netssm/train"
)

// TestFullPassLayoutDoesNotChangeTheLoss: one long trace among short ones
// makes the full validation pass pick fewer, longer rows (fewer Runs), and
// the loss it measures is the same as with the training layout: windows only
// cut where the carried state resumes.
func TestFullPassLayoutDoesNotChangeTheLoss(t *testing.T) {
	orttest.Init(t)
	cfg, _ := model.Preset("tiny")
	const B, L = 4, 32
	r := rand.New(rand.NewPCG(5, 6))
	var store train.SliceStore
	for _, n := range []int{1000, 40, 33, 9} {
		toks := make([]uint16, n)
		for i := range toks {
			toks[i] = uint16(r.IntN(256))
		}
		store = append(store, toks)
	}
	uni := make([]float64, cfg.VocabSize)
	e, err := train.NewEngine(mustStep(t, cfg, 1, L), 1, L, model.InitParams(cfg, 3), train.DefaultAdamW, ort.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	params := train.ParamTensorsForTest(e)
	newValidator := func(rows, window int) *train.Validator {
		eg, err := train.BuildEvalStep("val", rows, window, model.TrainLoss(cfg))
		if err != nil {
			t.Fatal(err)
		}
		v, err := train.NewValidator(eg, store, rows, window, 0, uni, -1, ort.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	run := func(rows, window int) train.ValResult {
		v := newValidator(rows, window)
		defer v.Close()
		res, err := v.Run(context.Background(), params, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	v := newValidator(B, L)
	rows, window, err := v.FullPassLayout()
	v.Close()
	if err != nil {
		t.Fatal(err)
	}
	// 4 rows × 32: the long trace needs 32 Runs; 2 × 64: 16; 1 × 128: 8+1+1+1.
	if rows != 1 || window != B*L {
		t.Fatalf("layout %d rows × %d, want 1 × %d", rows, window, B*L)
	}
	a, b := run(B, L), run(rows, window)
	if a.Tokens != b.Tokens || math.Abs(a.Loss-b.Loss) > 1e-5*math.Abs(a.Loss) {
		t.Fatalf("loss %.7f over %d tokens (4×32) vs %.7f over %d (1×128)", a.Loss, a.Tokens, b.Loss, b.Tokens)
	}
	t.Logf("loss %.7f (4×32) vs %.7f (1×128) over %d tokens", a.Loss, b.Loss, a.Tokens)
}

// TestValidationReportsProgressAndStopsWhenCancelled: a validation pass
// counts every target token of its traces through the progress callback,
// and a cancelled context stops it with the context's error (Ctrl-C during
// a long final validation must not be ignored).
func TestValidationReportsProgressAndStopsWhenCancelled(t *testing.T) {
	orttest.Init(t)
	cfg, _ := model.Preset("tiny")
	const B, L = 2, 32
	eg, err := train.BuildEvalStep("val", B, L, model.TrainLoss(cfg))
	if err != nil {
		t.Fatal(err)
	}
	store := train.SliceStore{make([]uint16, 100), make([]uint16, 41), make([]uint16, 7)}
	uni := make([]float64, cfg.VocabSize)
	v, err := train.NewValidator(eg, store, B, L, 0, uni, -1, ort.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	e, err := train.NewEngine(mustStep(t, cfg, B, L), B, L, model.InitParams(cfg, 1), train.DefaultAdamW, ort.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	params := train.ParamTensorsForTest(e)
	var done, total int64
	r, err := v.Run(context.Background(), params, func(d, tot int64) { done, total = d, tot })
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(99 + 40 + 6); r.Tokens != want || done != want || total != want {
		t.Fatalf("tokens %d, progress %d of %d; want %d of %d", r.Tokens, done, total, want, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err = v.Run(ctx, params, func(d, tot int64) { calls++; cancel() })
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("after cancelling in the first window: err %v after %d windows; want context.Canceled after 1", err, calls)
	}
}

func mustStep(t *testing.T, cfg model.Config, B, L int) *train.StepGraph {
	t.Helper()
	sg, err := train.BuildTrainStep("step", B, L, model.TrainLoss(cfg), train.DefaultAdamW)
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

// TestPerTokenLossesAddUpToTheValidationLoss: a validator built from the
// per-token loss (model.TokenLoss) reports each target once, at its own
// position in its own trace, and their mean is the validation loss of the
// ordinary (mean-loss) graph on the same traces.
func TestPerTokenLossesAddUpToTheValidationLoss(t *testing.T) {
	orttest.Init(t)
	cfg, _ := model.Preset("tiny")
	const B, L = 2, 16
	r := rand.New(rand.NewPCG(7, 8))
	var store train.SliceStore
	for _, n := range []int{50, 17, 2, 33} {
		toks := make([]uint16, n)
		for i := range toks {
			toks[i] = uint16(r.IntN(256))
		}
		store = append(store, toks)
	}
	e, err := train.NewEngine(mustStep(t, cfg, 1, L), 1, L, model.InitParams(cfg, 3), train.DefaultAdamW, ort.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	params := train.ParamTensorsForTest(e)
	validate := func(loss train.LossBuilder, observe train.TokenObserver) train.ValResult {
		eg, err := train.BuildEvalStep("val", B, L, loss)
		if err != nil {
			t.Fatal(err)
		}
		v, err := train.NewValidator(eg, store, B, L, 0, make([]float64, cfg.VocabSize), -1, ort.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		if observe != nil {
			if err := v.ObserveTokens(observe); err != nil {
				t.Fatal(err)
			}
		}
		res, err := v.Run(context.Background(), params, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	mean := validate(model.TrainLoss(cfg), nil)
	seen := map[[2]int]bool{}
	sum := 0.0
	perToken := validate(model.TokenLoss(cfg), func(trace int, toks []uint16, target int, nats float64) {
		if &toks[0] != &store[trace][0] || target < 1 || target >= len(toks) || seen[[2]int{trace, target}] {
			t.Fatalf("target %d of trace %d: not a new position of that trace", target, trace)
		}
		seen[[2]int{trace, target}] = true
		sum += nats
	})
	if want := 49 + 16 + 1 + 32; len(seen) != want || perToken.Tokens != int64(want) {
		t.Fatalf("%d targets observed, %d counted; want %d", len(seen), perToken.Tokens, want)
	}
	if math.Abs(perToken.Loss-mean.Loss) > 1e-5*mean.Loss || math.Abs(sum/float64(len(seen))-mean.Loss) > 1e-5*mean.Loss {
		t.Fatalf("per-token mean %.7f (observed %.7f), validation loss %.7f", perToken.Loss, sum/float64(len(seen)), mean.Loss)
	}
}
