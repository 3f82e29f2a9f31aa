package train_test

import (
	"math"
	"os"
	"testing"

	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
	"github.com/netssm/netssm/train"
)

// TestIOBindingTrainsAsHostBuffers trains the tiny Mamba-2 for a few steps
// twice from the same start, once with Go-owned buffers swapped between Runs
// and once with parameters and moments kept in provider memory (I/O
// binding), saving a checkpoint half way and restoring it into a third,
// bound engine: every loss, gradient norm and the final parameters and
// moments must agree. It runs on NETSSM_TEST_EP (cpu unless set; cuda on a
// GPU machine).
func TestIOBindingTrainsAsHostBuffers(t *testing.T) {
	orttest.Init(t)
	ep := os.Getenv("NETSSM_TEST_EP")
	if ep == "" {
		ep = "cpu"
	}
	tol := 1e-6 // one CPU, one thread: the same kernels on the same numbers
	if ep != "cpu" {
		tol = 1e-4
	}
	cfg, _ := model.Preset("tiny")
	const B, L, steps = 2, 64, 6
	sg, err := train.BuildTrainStep("tiny", B, L, model.TrainLoss(cfg), train.DefaultAdamW)
	if err != nil {
		t.Fatal(err)
	}
	engine := func(binding string) *train.Engine {
		e, err := train.NewEngine(sg, B, L, model.InitParams(cfg, 1), train.DefaultAdamW, ort.SessionOptions{EP: ep, Threads: 1, IOBinding: binding})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		return e
	}
	windows := make([]*train.Window, steps)
	for i := range windows {
		windows[i] = randomWindow(B, L, cfg.VocabSize, uint64(i+1))
		windows[i].Reset = []bool{i == 0, i%3 == 0} // reset rows now and then
	}
	type record struct{ loss, norm float64 }
	run := func(e *train.Engine, from int, snap int) ([]record, *train.Checkpoint) {
		var recs []record
		var ck *train.Checkpoint
		for i := from; i < steps; i++ {
			if i == snap {
				entries, data, err := e.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				ck = &train.Checkpoint{Header: train.CheckpointHeader{Step: e.Steps(), Tensors: entries}, Data: data}
			}
			loss, norm, err := e.Step(windows[i], 2e-3)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, record{loss, norm})
		}
		return recs, ck
	}
	host, bound := engine("off"), engine("on")
	hostRecs, _ := run(host, 0, -1)
	boundRecs, ck := run(bound, 0, steps/2)
	close := func(a, b float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(a)) }
	for i := range hostRecs {
		if !close(hostRecs[i].loss, boundRecs[i].loss) || !close(hostRecs[i].norm, boundRecs[i].norm) {
			t.Fatalf("step %d: host buffers loss %.9g norm %.9g, I/O binding %.9g %.9g", i+1, hostRecs[i].loss, hostRecs[i].norm, boundRecs[i].loss, boundRecs[i].norm)
		}
	}
	resumed := engine("on")
	if err := resumed.Restore(ck); err != nil {
		t.Fatal(err)
	}
	resumedRecs, _ := run(resumed, steps/2, -1)
	for i, r := range resumedRecs {
		if b := boundRecs[steps/2+i]; !close(r.loss, b.loss) {
			t.Fatalf("step %d after restoring the checkpoint of step %d: loss %.9g, uninterrupted %.9g", steps/2+i+1, steps/2, r.loss, b.loss)
		}
	}
	for _, e := range []*train.Engine{bound, resumed} {
		assertSameSnapshot(t, host, e, close)
	}
}

// assertSameSnapshot fails unless engine got holds the tensors of engine want
// (the same names in the same order, values close).
func assertSameSnapshot(t *testing.T, want, got *train.Engine, close func(a, b float64) bool) {
	t.Helper()
	wantEntries, wantData, err := want.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	gotEntries, gotData, err := got.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for i, entry := range wantEntries {
		if gotEntries[i].Name != entry.Name {
			t.Fatalf("snapshot entry %d is %s, want %s", i, gotEntries[i].Name, entry.Name)
		}
		for j, w := range wantData[i] {
			if !close(float64(w), float64(gotData[i][j])) {
				t.Fatalf("%s[%d] after %d steps: host buffers %v, I/O binding %v", entry.Name, j, want.Steps(), w, gotData[i][j])
			}
		}
	}
}
