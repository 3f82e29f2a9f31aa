package graph

import "slices"

// Reductions and scans. Axes may be negative; no axes means all of them.

// reduceAxes normalises, sorts and de-duplicates axes.
func reduceAxes(op string, x *Tensor, axes []int) []int {
	if len(axes) == 0 {
		for i := range x.Rank() {
			axes = append(axes, i)
		}
	}
	out := make([]int, len(axes))
	for i, a := range axes {
		out[i] = normAxis(op, a, x.Rank())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// reducedShape is x's shape after reducing axes, with or without keepdims.
func reducedShape(x *Tensor, axes []int, keep bool) Shape {
	var s Shape
	for i, d := range x.shape {
		if slices.Contains(axes, i) {
			if keep {
				s = append(s, 1)
			}
			continue
		}
		s = append(s, d)
	}
	return s
}

func reduce(op string, x *Tensor, keep bool, axes []int) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph(op, x)
	if !numeric(x.dtype) {
		failf("%s: unsupported dtype %v (%s)", op, x.dtype, x)
	}
	axes = reduceAxes(op, x, axes)
	k := 0
	if keep {
		k = 1
	}
	shape := reducedShape(x, axes, keep)
	if op == "ReduceSum" { // opset 13+: axes is an input
		return g.add1(op, []*Tensor{x, g.ints64(axes...)}, []attribute{{"keepdims", k}}, map[string]any{"axes": axes}, x.dtype, shape)
	}
	return g.add1(op, []*Tensor{x}, []attribute{{"axes", axes}, {"keepdims", k}}, nil, x.dtype, shape)
}

// ReduceSum sums over axes (all when none), dropping them.
func ReduceSum(x *Tensor, axes ...int) *Tensor { return reduce("ReduceSum", x, false, axes) }

// ReduceSumKeep sums over axes, keeping them with size 1.
func ReduceSumKeep(x *Tensor, axes ...int) *Tensor { return reduce("ReduceSum", x, true, axes) }

// ReduceMean averages over axes (all when none), dropping them.
func ReduceMean(x *Tensor, axes ...int) *Tensor { return reduce("ReduceMean", x, false, axes) }

// ReduceMeanKeep averages over axes, keeping them with size 1.
func ReduceMeanKeep(x *Tensor, axes ...int) *Tensor { return reduce("ReduceMean", x, true, axes) }

// ReduceMax is the maximum over axes (all when none), dropping them.
func ReduceMax(x *Tensor, axes ...int) *Tensor { return reduce("ReduceMax", x, false, axes) }

// ReduceMaxKeep is the maximum over axes, keeping them with size 1.
func ReduceMaxKeep(x *Tensor, axes ...int) *Tensor { return reduce("ReduceMax", x, true, axes) }

// CumSum is the cumulative sum along axis: y_i = Σ_{j≤i} x_j; exclusive
// leaves x_i out (Σ_{j<i}), reverse sums from the end (Σ_{j≥i}).
func CumSum(x *Tensor, axis int, exclusive, reverse bool) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("CumSum", x)
	if !numeric(x.dtype) {
		failf("CumSum: unsupported dtype %v (%s)", x.dtype, x)
	}
	axis = normAxis("CumSum", axis, x.Rank())
	attrs := []attribute{{"exclusive", b2i(exclusive)}, {"reverse", b2i(reverse)}}
	return g.add1("CumSum", []*Tensor{x, g.constant(Int64, nil, encodeScalar(Int64, float64(axis)))}, attrs, map[string]any{"axis": axis}, x.dtype, x.shape)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// keptShape is the keepdims shape of a reduction node's output.
func keptShape(n *node) Shape {
	axes := n.intsAttr("axes")
	return reducedShape(n.inputs[0], axes, true)
}

// vjpReduceSum: y = Σ x → dx = dy broadcast back over the summed axes.
func vjpReduceSum(n *node, dy []*Tensor) []*Tensor {
	x := n.inputs[0]
	return []*Tensor{Expand(Reshape(dy[0], keptShape(n)...), x.shape...), nil}
}

// vjpReduceMean: y = Σ x / m → dx = dy / m broadcast back.
func vjpReduceMean(n *node, dy []*Tensor) []*Tensor {
	x := n.inputs[0]
	m := x.shape.Size() / max(n.outputs[0].shape.Size(), 1)
	d := Reshape(dy[0], keptShape(n)...).MulScalar(1 / float64(m))
	return []*Tensor{Expand(d, x.shape...)}
}

// vjpReduceMax: y = max x → dx = dy where x = y, shared equally among ties.
func vjpReduceMax(n *node, dy []*Tensor) []*Tensor {
	x, keep := n.inputs[0], keptShape(n)
	axes := n.intsAttr("axes")
	hit := Cast(Equal(x, Reshape(n.outputs[0], keep...)), x.dtype)
	share := Div(hit, ReduceSumKeep(hit, axes...))
	return []*Tensor{Mul(share, Reshape(dy[0], keep...))}
}

// vjpCumSum: y = cumsum(x) → dx = cumsum of dy in the other direction
// (same exclusivity).
func vjpCumSum(n *node, dy []*Tensor) []*Tensor {
	ex, rev := n.intAttr("exclusive") == 1, n.intAttr("reverse") == 1
	return []*Tensor{CumSum(dy[0], n.intAttr("axis"), ex, !rev), nil}
}
