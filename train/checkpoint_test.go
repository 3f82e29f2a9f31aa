package train

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleCheckpoint(step int64) *Checkpoint {
	return &Checkpoint{
		Header: CheckpointHeader{
			Step: step, Tokens: step * 100, BestVal: 1.5,
			RunConfig:   json.RawMessage(`{"preset":"tiny"}`),
			DataState:   json.RawMessage(`{"rows":[1,2]}`),
			ElapsedSecs: 12.5, LastLoss: 0.75,
			Tensors: []TensorEntry{{"w", []int64{2, 3}}, {"b", []int64{3}}},
		},
		Data: [][]float32{{1, 2, 3, 4, 5, 6}, {-1, 0.5, float32(step)}},
	}
}

func TestCheckpointRoundTripIsExact(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.ckpt")
	want := sampleCheckpoint(7)
	if err := WriteCheckpoint(p, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCheckpoint(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Step != 7 || string(got.Header.DataState) != `{"rows":[1,2]}` || got.Header.ElapsedSecs != 12.5 || got.Header.LastLoss != 0.75 {
		t.Fatalf("header = %+v", got.Header)
	}
	for i := range want.Data {
		for j := range want.Data[i] {
			if got.Data[i][j] != want.Data[i][j] {
				t.Fatalf("tensor %d[%d] = %v, want %v", i, j, got.Data[i][j], want.Data[i][j])
			}
		}
	}
}

func TestCheckpointWithCountersUnderRNGStateStillReads(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.ckpt")
	old := sampleCheckpoint(3)
	old.Header.ElapsedSecs, old.Header.LastLoss = 0, 0
	old.Header.LegacyCounters = []byte(`{"elapsed_s":42.5,"loss":1.25}`)
	if err := WriteCheckpoint(p, old); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCheckpoint(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.ElapsedSecs != 42.5 || got.Header.LastLoss != 1.25 || got.Header.LegacyCounters != nil {
		t.Fatalf("elapsed %v, loss %v, legacy %q; want 42.5, 1.25, none", got.Header.ElapsedSecs, got.Header.LastLoss, got.Header.LegacyCounters)
	}
	old.Header.LegacyCounters = []byte{1, 2, 3}
	WriteCheckpoint(p, old)
	if _, err := ReadCheckpoint(p); !errors.Is(err, ErrCorruptCheckpoint) || !strings.Contains(err.Error(), "rng_state") {
		t.Fatalf("unreadable rng_state: err = %v, want a corrupt-checkpoint error naming rng_state", err)
	}
}

func TestCorruptCheckpointIsDetected(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.ckpt")
	WriteCheckpoint(p, sampleCheckpoint(1))
	raw, _ := os.ReadFile(p)
	raw[len(raw)/2] ^= 0x40
	os.WriteFile(p, raw, 0o644)
	if _, err := ReadCheckpoint(p); !errors.Is(err, ErrCorruptCheckpoint) {
		t.Fatalf("flipped bit: err = %v", err)
	}
	os.WriteFile(p, raw[:len(raw)-10], 0o644)
	if _, err := ReadCheckpoint(p); !errors.Is(err, ErrCorruptCheckpoint) {
		t.Fatalf("truncated: err = %v", err)
	}
}

func TestResumeFallsBackToPreviousCheckpointWhenNewestIsCorrupt(t *testing.T) {
	run := t.TempDir()
	for _, s := range []int64{10, 20, 30} {
		if _, err := SaveCheckpoint(run, sampleCheckpoint(s), 2, false); err != nil {
			t.Fatal(err)
		}
	}
	names, _ := listCheckpoints(filepath.Join(run, checkpointDir))
	if len(names) != 2 {
		t.Fatalf("kept %v, want the newest 2", names)
	}
	newest := filepath.Join(run, checkpointDir, checkpointName(30))
	os.WriteFile(newest, []byte("garbage"), 0o644)
	c, path, skipped, err := LoadLatest(run)
	if err != nil {
		t.Fatal(err)
	}
	if c.Header.Step != 20 || !strings.HasSuffix(path, checkpointName(20)) || len(skipped) != 1 {
		t.Fatalf("resumed from %s (step %d), skipped %v", path, c.Header.Step, skipped)
	}
}

func TestScheduleWarmsUpThenDecays(t *testing.T) {
	s := Schedule{Peak: 1e-3, Warmup: 10, Total: 110, MinRatio: 0.1}
	if lr := s.LR(0); lr != 1e-4 {
		t.Errorf("LR(0) = %v", lr)
	}
	if lr := s.LR(9); lr != 1e-3 {
		t.Errorf("LR(9) = %v, want peak", lr)
	}
	if lr := s.LR(60); lr < 0.54e-3 || lr > 0.56e-3 {
		t.Errorf("LR(midway) = %v, want ≈0.55e-3", lr)
	}
	if lr := s.LR(500); lr != 1e-4 {
		t.Errorf("LR(after end) = %v, want floor", lr)
	}
	prev := s.LR(10)
	for step := int64(11); step < 110; step++ {
		if lr := s.LR(step); lr > prev {
			t.Fatalf("LR rises at step %d", step)
		} else {
			prev = lr
		}
	}
}
