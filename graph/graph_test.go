package graph_test

import (
	"math/rand/v2"
	"testing"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/internal/testutil"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

func TestBatchedMatMulPlusBiasMatchesGo(t *testing.T) {
	g := graph.New("affine", graph.WithFloat(graph.Float64))
	x := g.Input("x", graph.Float64, 2, 3, 4)
	w := g.Param("w", 4, 5)
	b := g.Param("b", 5)
	g.Output("y", x.MatMul(w).Add(b))
	s := orttest.Session(t, g)

	r := rand.New(rand.NewPCG(1, 2))
	xv, wv, bv := uniform(r, 24, -1, 1), uniform(r, 20, -1, 1), uniform(r, 5, -1, 1)
	out := orttest.Run(t, s, map[string]*ort.Tensor{"x": tensor64(x, xv), "w": tensor64(w, wv), "b": tensor64(b, bv)})
	got := out["y"].Float64()
	want := make([]float64, 0, 30)
	for row := range 6 {
		for j := range 5 {
			sum := bv[j]
			for k := range 4 {
				sum += xv[row*4+k] * wv[k*5+j]
			}
			want = append(want, sum)
		}
	}
	if e := testutil.MaxRelErr(got, want); e > 1e-14 {
		t.Fatalf("max relative error %g\ngot  %v\nwant %v", e, got, want)
	}
}
