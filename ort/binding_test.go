package ort_test

import (
	"os"
	"strings"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// testEP is the provider the binding tests run on: cpu, or NETSSM_TEST_EP
// (cuda on a GPU machine: scripts/cuda-checks.sh runs them there).
func testEP(t *testing.T) string {
	ep := os.Getenv("NETSSM_TEST_EP")
	if ep == "" {
		return "cpu"
	}
	return ep
}

// addMulSession opens addMulModel on the test provider with an empty binding.
func addMulSession(t *testing.T) (*ort.Session, *ort.Binding) {
	t.Helper()
	orttest.Init(t)
	s, err := ort.NewSession(addMulModel(t), ort.SessionOptions{EP: testEP(t), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.NewBinding()
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); s.Close() })
	return s, b
}

func hostTensor(t *testing.T, data []float32) *ortgo.Tensor[float32] {
	t.Helper()
	x, err := ortgo.NewTensor(ortgo.NewShape(2, 3), data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Destroy() })
	return x
}

// TestBindingCarriesDeviceTensorsBetweenRuns runs a ← (a + b)·2 three times
// with a kept in provider memory (two device tensors swapped between Runs,
// as the training loop and the decoder do) and b a host input, then reads
// a back: it must equal the same recurrence computed in Go, and a host
// output bound on the last Run must hold the same values.
func TestBindingCarriesDeviceTensorsBetweenRuns(t *testing.T) {
	s, b := addMulSession(t)
	a0 := []float32{1, -2, 0.5, 3, 0, -1}
	bv := []float32{0.25, 1, -1, 2, 0.5, 0}
	want := append([]float32(nil), a0...)
	for range 3 {
		for i := range want {
			want[i] = (want[i] + bv[i]) * 2
		}
	}
	cur, err := s.NewDeviceTensor([]int64{2, 3})
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Release()
	nxt, err := s.NewDeviceTensor([]int64{2, 3})
	if err != nil {
		t.Fatal(err)
	}
	defer nxt.Release()
	if err := s.Upload([]*ortgo.Tensor[float32]{hostTensor(t, a0)}, []*ort.DeviceTensor{cur}); err != nil {
		t.Fatal(err)
	}
	host := hostTensor(t, make([]float32, 6))
	for k := range 3 {
		b.Clear()
		if err := b.InputDevice("a", cur); err != nil {
			t.Fatal(err)
		}
		if err := b.Input("b", hostTensor(t, bv)); err != nil {
			t.Fatal(err)
		}
		if k < 2 {
			err = b.OutputDevice("y", nxt)
		} else {
			err = b.Output("y", host)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Run(); err != nil {
			t.Fatal(err)
		}
		cur, nxt = nxt, cur
	}
	for i, w := range want {
		if got := host.GetData()[i]; got != w {
			t.Fatalf("host output[%d] = %v, want %v", i, got, w)
		}
	}
	// The second Run's result is still on the device (now in nxt after the
	// last swap); download it and compare with two steps of the recurrence.
	back := hostTensor(t, make([]float32, 6))
	if err := s.Download([]*ort.DeviceTensor{nxt}, []*ortgo.Tensor[float32]{back}); err != nil {
		t.Fatal(err)
	}
	for i := range a0 {
		if w := ((a0[i]+bv[i])*2 + bv[i]) * 2; back.GetData()[i] != w {
			t.Fatalf("downloaded[%d] = %v, want %v", i, back.GetData()[i], w)
		}
	}
}

func TestBindingRejectsUnknownNamesAndWrongSizes(t *testing.T) {
	s, b := addMulSession(t)
	if err := b.Input("nope", hostTensor(t, make([]float32, 6))); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("binding an unknown input: %v", err)
	}
	d, err := s.NewDeviceTensor([]int64{4})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	if err := s.Download([]*ort.DeviceTensor{d}, []*ortgo.Tensor[float32]{hostTensor(t, make([]float32, 6))}); err == nil {
		t.Fatal("a 4-element tensor downloaded into 6 elements")
	}
}
