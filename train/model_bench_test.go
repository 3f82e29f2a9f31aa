package train_test

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
	"github.com/netssm/netssm/train"
)

func randomWindow(B, L, vocab int, seed uint64) *train.Window {
	r := rand.New(rand.NewPCG(seed, 1))
	w := &train.Window{Inputs: make([]int64, B*L), Targets: make([]int64, B*L), Mask: make([]float32, B*L), Reset: make([]bool, B)}
	for i := range w.Inputs {
		w.Inputs[i] = int64(r.IntN(256))
		w.Targets[i] = int64(r.IntN(256))
		w.Mask[i] = 1
	}
	w.Tokens = B * L
	return w
}

// TestTinyMamba2TrainsOnRepeatingBytes trains the tiny preset on a periodic
// byte sequence; the loss must fall well below the uniform ln(256).
func TestTinyMamba2TrainsOnRepeatingBytes(t *testing.T) {
	orttest.Init(t)
	cfg, _ := model.Preset("tiny")
	const B, L = 2, 64
	sg, err := train.BuildTrainStep("tiny", B, L, model.TrainLoss(cfg), train.DefaultAdamW)
	if err != nil {
		t.Fatal(err)
	}
	e, err := train.NewEngine(sg, B, L, model.InitParams(cfg, 1), train.DefaultAdamW, ort.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	w := &train.Window{Inputs: make([]int64, B*L), Targets: make([]int64, B*L), Mask: make([]float32, B*L), Reset: []bool{true, true}}
	pattern := []int64{69, 0, 0, 40, 17, 6, 64, 0}
	for i := range w.Inputs {
		w.Inputs[i] = pattern[i%len(pattern)]
		w.Targets[i] = pattern[(i+1)%len(pattern)]
		w.Mask[i] = 1
	}
	var first, last float64
	for s := 0; s < 40; s++ {
		w.Reset[0], w.Reset[1] = true, true
		loss, _, err := e.Step(w, 3e-3)
		if err != nil {
			t.Fatal(err)
		}
		if s == 0 {
			first = loss
		}
		last = loss
	}
	t.Logf("loss %.3f → %.3f", first, last)
	if !(last < 1.0 && last < first/3) {
		t.Fatalf("loss %.3f → %.3f: the model does not learn a periodic sequence", first, last)
	}
}

// BenchmarkTrainStep measures one optimiser step (forward, backward, clip,
// AdamW) of the train-step graph; tokens/s is B·L per step.
//
//	go test -run '^$' -bench 'TrainStep$/(tiny|small)' -benchtime 5x ./train
func BenchmarkTrainStep(b *testing.B) {
	orttest.Init(b)
	for _, c := range []struct {
		preset string
		B, L   int
	}{{"tiny", 4, 2048}, {"small", 4, 2048}, {"base", 4, 1024}} {
		for _, kernels := range []string{model.KernelsFused, model.KernelsStandard} {
			b.Run(fmt.Sprintf("%s/%s/B=%d/L=%d", c.preset, kernels, c.B, c.L), func(b *testing.B) {
				cfg, _ := model.Preset(c.preset)
				cfg.Kernels = kernels
				benchTrainStep(b, c.preset, cfg, c.B, c.L, 2) // two warm-up steps, as the PyTorch reference does
			})
		}
	}
}

// BenchmarkTrainStepChunk measures the small preset's train step at the
// shared-captures configuration (B=8, L=512) for several SSD chunk lengths;
// the function is the same for every Q, only the cost moves between the
// Q×Q terms inside chunks and the states between them.
//
//	go test -run '^$' -bench 'TrainStepChunk' -benchtime 5x ./train
func BenchmarkTrainStepChunk(b *testing.B) {
	orttest.Init(b)
	const B, L = 8, 512
	for _, q := range []int{32, 64, 128} {
		b.Run(fmt.Sprintf("small/B=%d/L=%d/Q=%d", B, L, q), func(b *testing.B) {
			cfg, _ := model.Preset("small")
			cfg.ChunkSize = q
			benchTrainStep(b, "small", cfg, B, L, 1)
		})
	}
}

// BenchmarkTrainStepPacketFeatures measures the cost of packet positions
// (model.Config.PacketPositions K) and previous packets (PrevPackets J over
// a 256-token history) in the small preset's train step at the
// shared-captures configuration (B=8, L=512, Q=64), alternated twice: plain,
// K = 128 alone (train's default), K = 128 with copy logits from J = 4
// previous packets (the shared-captures script's).
//
//	go test -run '^$' -bench 'TrainStepPacketFeatures' -benchtime 5x ./train
func BenchmarkTrainStepPacketFeatures(b *testing.B) {
	orttest.Init(b)
	const B, L = 8, 512
	for range 2 {
		for _, f := range []struct{ k, j int }{{0, 0}, {128, 0}, {128, 4}} {
			b.Run(fmt.Sprintf("small/B=%d/L=%d/K=%d/J=%d", B, L, f.k, f.j), func(b *testing.B) {
				cfg, _ := model.Preset("small")
				cfg.ChunkSize, cfg.PacketPositions, cfg.PacketToken = 64, f.k, 257
				if f.j > 0 {
					cfg.PrevPackets, cfg.PacketHistory = f.j, 256
				}
				benchTrainStep(b, "small", cfg, B, L, 1)
			})
		}
	}
}

// BenchmarkTrainStepKernels compares the fused kernels with standard ops in
// the small preset's train step on one thread, alternated twice, reporting
// the process's CPU time per step beside tokens/s: on a shared machine CPU
// time is the steadier figure.
//
//	go test -run '^$' -bench 'TrainStepKernels' -benchtime 2x ./train
func BenchmarkTrainStepKernels(b *testing.B) {
	orttest.Init(b)
	const B, L = 4, 1024
	for range 2 {
		for _, kernels := range []string{model.KernelsFused, model.KernelsStandard} {
			b.Run(fmt.Sprintf("small/%s/B=%d/L=%d/threads=1", kernels, B, L), func(b *testing.B) {
				cfg, _ := model.Preset("small")
				cfg.Kernels = kernels
				benchTrainStepOn(b, "small", cfg, B, L, 1, ort.SessionOptions{Threads: 1})
			})
		}
	}
}

// benchTrainStep times b.N steps of the train-step graph of cfg on one
// random window after warm steps, and reports tokens/s.
func benchTrainStep(b *testing.B, name string, cfg model.Config, B, L, warm int) {
	benchTrainStepOn(b, name, cfg, B, L, warm, ort.SessionOptions{})
}

func benchTrainStepOn(b *testing.B, name string, cfg model.Config, B, L, warm int, so ort.SessionOptions) {
	sg, err := train.BuildTrainStep(name, B, L, model.TrainLoss(cfg), train.DefaultAdamW)
	if err != nil {
		b.Fatal(err)
	}
	e, err := train.NewEngine(sg, B, L, model.InitParams(cfg, 1), train.DefaultAdamW, so)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	w := randomWindow(B, L, cfg.VocabSize, 1)
	for range warm {
		if _, _, err := e.Step(w, 1e-3); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		if _, _, err := e.Step(w, 1e-3); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(B*L*b.N)/time.Since(start).Seconds(), "tokens/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// cpuTime is the user + system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
