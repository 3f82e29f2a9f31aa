package model_test

import (
	"math/rand/v2"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/internal/testutil"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// TestFloat32ForwardTracksFloat64Reference: the training precision stays
// close to the float64 recurrence over a window of many chunks, from a
// carried-in state.
func TestFloat32ForwardTracksFloat64Reference(t *testing.T) {
	c, _ := model.Preset("tiny")
	withPos := c
	withPos.PacketPositions, withPos.PacketToken = 128, 257
	for name, c := range map[string]model.Config{"plain": c, "packet positions": withPos} {
		t.Run(name, func(t *testing.T) { testFloat32ForwardTracksFloat64Reference(t, c) })
	}
}

func testFloat32ForwardTracksFloat64Reference(t *testing.T, c model.Config) {
	r := rand.New(rand.NewPCG(11, 12))
	p32 := model.InitParams(c, 6)
	p := model.ToFloat64(p32) // the same values in both precisions
	const B, L = 1, 5*64 + 7
	ids := randomIDs(c, B, L, r)
	st := randomStates(c, B, r)
	want, wantSt, err := model.ReferenceForward(c, p, flatIDs(ids), B, L, st)
	if err != nil {
		t.Fatal(err)
	}
	g, err := model.NewForwardGraph(c, B, L, graph.Float32)
	if err != nil {
		t.Fatal(err)
	}
	s := orttest.Session(t, g, graph.Initializers(model.Values(p32)))
	feeds := map[string]*ort.Tensor{model.InIDs: ort.NewTensor([]int64{B, L}, flatIDs(ids))}
	in, out := model.StateNames(c)
	shapes := model.StateShapes(c, B)
	for i, v := range st.Flat() {
		feeds[in[i]] = ort.NewTensor(int64s(shapes[i]), toF32(v))
	}
	res := orttest.Run(t, s, feeds)
	if e := testutil.MaxRelErr(toF64(res[model.OutLogits].Float32()), want); e > 1e-4 {
		t.Errorf("float32 logits differ from the float64 reference by %.3g", e)
	}
	for i, v := range wantSt.Flat() {
		if e := testutil.MaxRelErr(toF64(res[out[i]].Float32()), v); e > 1e-4 {
			t.Errorf("float32 %s differs from the float64 reference by %.3g", out[i], e)
		}
	}
}

func toF32(v []float64) []float32 {
	o := make([]float32, len(v))
	for i, x := range v {
		o[i] = float32(x)
	}
	return o
}

func toF64(v []float32) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = float64(x)
	}
	return o
}
