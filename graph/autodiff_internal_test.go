package graph

import (
	"slices"
	"strings"
	"testing"
)

func TestAccumulatedGradientsAreShapeChecked(t *testing.T) {
	// A deliberately wrong rule: Sign's gradient with a transposed shape.
	vjps["Sign"] = func(n *node, d []*Tensor) []*Tensor { return []*Tensor{Transpose(d[0])} }
	defer delete(vjps, "Sign")
	g := New("badrule", WithFloat(Float64))
	x := g.Input("x", Float64, 2, 3)
	_, err := Gradients(ReduceSum(Sign(x)), []*Tensor{x})
	if err == nil || !strings.Contains(err.Error(), "rule of Sign") || !strings.Contains(err.Error(), "(3, 2)") {
		t.Fatalf("a rule giving the wrong shape was not caught: %v", err)
	}
}

func TestBroadcastAxesAreTheAxesBroadcastingAdds(t *testing.T) {
	cases := []struct {
		from, to Shape
		axes     []int
		ok       bool
	}{
		{Shape{3}, Shape{2, 3}, []int{0}, true},
		{Shape{2, 1}, Shape{2, 5}, []int{1}, true},
		{Shape{1, 1}, Shape{4, 2, 3}, []int{0, 1, 2}, true},
		{Shape{}, Shape{2, 2}, []int{0, 1}, true},
		{Shape{2, 3}, Shape{2, 3}, nil, true},
		{Shape{3}, Shape{2, 4}, nil, false},
		{Shape{2, 3}, Shape{3}, nil, false},
	}
	for _, c := range cases {
		axes, ok := broadcastAxes(c.from, c.to)
		if ok != c.ok || !slices.Equal(axes, c.axes) {
			t.Errorf("broadcastAxes(%v, %v) = %v, %v; want %v, %v", c.from, c.to, axes, ok, c.axes, c.ok)
		}
	}
}
