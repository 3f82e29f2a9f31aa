package train_test

import (
	"math"
	"testing"

	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
	"github.com/netssm/netssm/train"
)

// TestFusedKernelsTrainLikeStandardOps: 20 optimiser steps of the tiny
// preset with the fused SSD kernels give the standard graph's loss curve,
// within float32 drift, on varied windows carrying states across steps.
func TestFusedKernelsTrainLikeStandardOps(t *testing.T) {
	orttest.Init(t)
	const B, L, steps = 2, 100, 20 // L spans a padded second chunk of 64
	curve := func(kernels string) []float64 {
		cfg, _ := model.Preset("tiny")
		cfg.Kernels = kernels
		sg, err := train.BuildTrainStep("tiny", B, L, model.TrainLoss(cfg), train.DefaultAdamW)
		if err != nil {
			t.Fatal(err)
		}
		e, err := train.NewEngine(sg, B, L, model.InitParams(cfg, 1), train.DefaultAdamW, ort.SessionOptions{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		var losses []float64
		for s := range steps {
			w := randomWindow(B, L, 256, uint64(s%5)) // five windows seen four times each
			w.Reset[0], w.Reset[1] = s%5 == 0, false
			loss, _, err := e.Step(w, 3e-3)
			if err != nil {
				t.Fatal(err)
			}
			losses = append(losses, loss)
		}
		return losses
	}
	fused, std := curve(model.KernelsFused), curve(model.KernelsStandard)
	for i := range std {
		if d := math.Abs(fused[i] - std[i]); !(d <= 1e-4*max(1, std[i])) {
			t.Errorf("step %d: fused loss %.6f, standard %.6f", i+1, fused[i], std[i])
		}
	}
	t.Logf("loss %.4f → %.4f (fused), %.4f → %.4f (standard)", fused[0], fused[steps-1], std[0], std[steps-1])
	if !(std[steps-1] < std[0]) {
		t.Errorf("the loss did not fall (%.4f → %.4f): the check compares nothing", std[0], std[steps-1])
	}
}
