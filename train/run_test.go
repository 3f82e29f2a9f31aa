package train

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/netssm/netssm/ort/orttest"
)

const tV, tD, tB, tL = 11, 4, 2, 6

func toyModel() Model {
	return Model{
		Loss:  linearLoss(tV, tD, tB),
		Vocab: tV,
		Init: func(seed uint64) map[string][]float32 {
			m := map[string][]float32{}
			for _, p := range []struct {
				name string
				n    int
			}{{"embedding.weight", tV * tD}, {"head.weight", tD * tV}, {"head.bias", tV}} {
				d := make([]float32, p.n)
				for j := range d {
					d[j] = float32(math.Sin(float64(j)*1.3+float64(seed))) * 0.3
				}
				m[p.name] = d
			}
			return m
		},
		PacketToken: 3,
	}
}

func toyData() Data {
	var tr, va SliceStore
	for i := 0; i < 6; i++ {
		t := make([]uint16, 10+5*i)
		for j := range t {
			t[j] = uint16((j*(i+1) + j/3) % tV)
		}
		if i == 5 {
			va = append(va, t)
		} else {
			tr = append(tr, t)
		}
	}
	return Data{Train: tr, Val: va}
}

func toyConfig(steps int64) RunConfig {
	return RunConfig{Preset: "toy", Ctx: tL, Batch: tB, Steps: steps, LR: 0.05, MinLRRatio: 0.1, Warmup: 2,
		Opt: DefaultAdamW, Seed: 3, Mode: "stream", EP: "cpu", Threads: 1, LogEvery: 1, EvalEvery: 4, CkptEvery: 1, Keep: 3}
}

func TestSameSeedSameLosses(t *testing.T) {
	orttest.Init(t)
	losses := func() []float64 {
		dir := t.TempDir()
		if _, err := Train(context.Background(), dir, toyConfig(8), toyModel(), toyData(), false); err != nil {
			t.Fatal(err)
		}
		rows, err := ReadMetrics(filepath.Join(dir, "metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		var l []float64
		for _, r := range rows {
			l = append(l, r.Loss)
		}
		return l
	}
	a, b := losses(), losses()
	if len(a) != 8 || len(a) != len(b) {
		t.Fatalf("rows %d and %d, want 8", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("step %d: loss %v vs %v", i+1, a[i], b[i])
		}
	}
}

func TestRunWritesValidationAndCheckpoints(t *testing.T) {
	orttest.Init(t)
	dir := t.TempDir()
	res, err := Train(context.Background(), dir, toyConfig(8), toyModel(), toyData(), false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Val == nil || !(res.Val.Loss > 0) || !(res.Val.Unigram > 0) || res.Val.Tokens == 0 {
		t.Fatalf("validation result %+v", res.Val)
	}
	for _, f := range []string{"config.json", "metrics.jsonl", "checkpoints/latest", "checkpoints/best.ckpt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}

// TestKilledRunResumesToTheSameLoss kills a training process with SIGKILL
// mid-run, resumes it, and checks that the loss at the last step equals the
// uninterrupted run's.
func TestKilledRunResumesToTheSameLoss(t *testing.T) {
	const steps = 40
	if dir := os.Getenv("NETSSM_TRAIN_CHILD"); dir != "" {
		orttest.Init(t)
		cfg := toyConfig(steps)
		Train(context.Background(), dir, cfg, toyModel(), toyData(), false)
		return
	}
	orttest.Init(t)
	ref := t.TempDir()
	want, err := Train(context.Background(), ref, toyConfig(steps), toyModel(), toyData(), false)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledRunResumesToTheSameLoss$")
	cmd.Env = append(os.Environ(), "NETSSM_TRAIN_CHILD="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill as soon as a few checkpoints exist.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		names, _ := listCheckpoints(filepath.Join(dir, checkpointDir))
		if len(names) >= 2 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	c, _, _, err := LoadLatest(dir)
	if err != nil {
		t.Fatalf("no checkpoint survived the kill: %v", err)
	}
	if c.Header.Step >= steps {
		t.Skipf("the child finished (step %d) before it could be killed; nothing to resume", c.Header.Step)
	}
	t.Logf("killed after step %d checkpoint; resuming", c.Header.Step)
	got, err := Train(context.Background(), dir, toyConfig(steps), toyModel(), toyData(), true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Steps != steps || math.Abs(got.Loss-want.Loss) > 1e-6*math.Max(1, math.Abs(want.Loss)) {
		t.Fatalf("resumed run: step %d loss %v; uninterrupted: step %d loss %v", got.Steps, got.Loss, want.Steps, want.Loss)
	}
	rows, _ := ReadMetrics(filepath.Join(dir, "metrics.jsonl"))
	if int64(len(rows)) != steps || rows[len(rows)-1].Step != steps {
		t.Fatalf("metrics has %d rows ending at step %s, want one per step", len(rows), strconv.FormatInt(rows[len(rows)-1].Step, 10))
	}
}

func TestInterruptSavesACheckpoint(t *testing.T) {
	orttest.Init(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Train(ctx, dir, toyConfig(100), toyModel(), toyData(), false)
	if err == nil {
		t.Fatal("no error from an interrupted run")
	}
	if _, _, _, err := LoadLatest(dir); err != nil {
		t.Fatalf("interrupt left no checkpoint: %v", err)
	}
}
