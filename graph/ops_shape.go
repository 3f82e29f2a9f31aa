package graph

import "slices"

// Ops that move elements without arithmetic.

// Transpose permutes the axes: output axis i is input axis perm[i]. An empty
// perm reverses the axes.
func Transpose(x *Tensor, perm ...int) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("Transpose", x)
	r := x.Rank()
	if len(perm) == 0 {
		for i := range r {
			perm = append(perm, r-1-i)
		}
	}
	if len(perm) != r {
		failf("Transpose: perm %v for %s of rank %d", perm, x, r)
	}
	perm = slices.Clone(perm)
	seen := make([]bool, r)
	shape := make(Shape, r)
	for i, p := range perm {
		p = normAxis("Transpose", p, r)
		if seen[p] {
			failf("Transpose: perm %v repeats axis %d", perm, p)
		}
		seen[p] = true
		perm[i] = p
		shape[i] = x.shape[p]
	}
	return g.add1("Transpose", []*Tensor{x}, []attribute{{"perm", perm}}, nil, x.dtype, shape)
}

// Reshape gives x a new shape with the same number of elements; one
// dimension may be −1 and is then inferred.
func Reshape(x *Tensor, shape ...int) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("Reshape", x)
	s := Shape(shape).Clone()
	infer := -1
	known := 1
	for i, d := range s {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			failf("Reshape: bad target shape %v for %s", Shape(shape), x)
		default:
			known *= d
		}
	}
	if infer >= 0 {
		if known == 0 || x.shape.Size()%known != 0 {
			failf("Reshape: cannot infer −1 in %v for %s", Shape(shape), x)
		}
		s[infer] = x.shape.Size() / known
	}
	if s.Size() != x.shape.Size() {
		failf("Reshape: %s has %d elements, target shape %v has %d", x, x.shape.Size(), s, s.Size())
	}
	if s.Equal(x.shape) {
		return x
	}
	return g.add1("Reshape", []*Tensor{x, g.ints64(s...)}, nil, nil, x.dtype, s)
}

// Unsqueeze inserts axes of size 1; axes index the output.
func Unsqueeze(x *Tensor, axes ...int) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("Unsqueeze", x)
	r := x.Rank() + len(axes)
	ins := make([]bool, r)
	norm := make([]int, len(axes))
	for i, a := range axes {
		a = normAxis("Unsqueeze", a, r)
		if ins[a] {
			failf("Unsqueeze: axis %d repeated in %v", a, axes)
		}
		ins[a] = true
		norm[i] = a
	}
	shape := make(Shape, 0, r)
	j := 0
	for i := range r {
		if ins[i] {
			shape = append(shape, 1)
		} else {
			shape = append(shape, x.shape[j])
			j++
		}
	}
	return g.add1("Unsqueeze", []*Tensor{x, g.ints64(norm...)}, nil, nil, x.dtype, shape)
}

// Squeeze removes the given axes, which must have size 1.
func Squeeze(x *Tensor, axes ...int) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("Squeeze", x)
	if len(axes) == 0 {
		failf("Squeeze: name the axes to remove (%s)", x)
	}
	drop := make([]bool, x.Rank())
	norm := make([]int, len(axes))
	for i, a := range axes {
		a = normAxis("Squeeze", a, x.Rank())
		if x.shape[a] != 1 {
			failf("Squeeze: axis %d of %s has size %d, not 1", a, x, x.shape[a])
		}
		drop[a] = true
		norm[i] = a
	}
	var shape Shape
	for i, d := range x.shape {
		if !drop[i] {
			shape = append(shape, d)
		}
	}
	return g.add1("Squeeze", []*Tensor{x, g.ints64(norm...)}, nil, nil, x.dtype, shape)
}

// Slice keeps x[start:end] along axis (step 1). Negative indices count from
// the end; indices are clamped to the axis as in Python.
func Slice(x *Tensor, axis, start, end int) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("Slice", x)
	axis = normAxis("Slice", axis, x.Rank())
	n := x.shape[axis]
	clamp := func(i int) int {
		if i < 0 {
			i += n
		}
		return min(max(i, 0), n)
	}
	start, end = clamp(start), clamp(end)
	if end < start {
		end = start
	}
	shape := x.shape.Clone()
	shape[axis] = end - start
	args := map[string]any{"axis": axis, "start": start, "end": end}
	return g.add1("Slice", []*Tensor{x, g.ints64(start), g.ints64(end), g.ints64(axis)}, nil, args, x.dtype, shape)
}

// Concat joins tensors of one dtype along axis; the other axes must agree.
// Concat of no tensors is nil.
func Concat(axis int, xs ...*Tensor) (out *Tensor) {
	if len(xs) == 0 {
		return nil
	}
	defer guard(xs[0], &out)
	g := sameGraph("Concat", xs...)
	axis = normAxis("Concat", axis, xs[0].Rank())
	shape := xs[0].shape.Clone()
	shape[axis] = 0
	for _, x := range xs {
		ok := x.dtype == xs[0].dtype && x.Rank() == len(shape)
		for i := 0; ok && i < len(shape); i++ {
			ok = i == axis || x.shape[i] == shape[i]
		}
		if !ok {
			failf("Concat: %s does not fit %s along axis %d", x, xs[0], axis)
		}
		shape[axis] += x.shape[axis]
	}
	return g.add1("Concat", slices.Clone(xs), []attribute{{"axis", axis}}, nil, xs[0].dtype, shape)
}

// Split cuts x along axis into pieces of the given sizes, which must add up
// to the axis.
func Split(x *Tensor, axis int, sizes ...int) (outs []*Tensor) {
	defer guardAll(x, &outs, len(sizes))
	g := sameGraph("Split", x)
	axis = normAxis("Split", axis, x.Rank())
	total := 0
	specs := make([]outSpec, len(sizes))
	for i, s := range sizes {
		if s < 0 {
			failf("Split: negative size in %v", sizes)
		}
		total += s
		specs[i] = outSpec{x.dtype, x.shape.Clone()}
		specs[i].shape[axis] = s
	}
	if total != x.shape[axis] {
		failf("Split: sizes %v add up to %d, axis %d of %s has %d", sizes, total, axis, x, x.shape[axis])
	}
	return g.addNode("Split", []*Tensor{x, g.ints64(sizes...)}, []attribute{{"axis", axis}}, nil, specs)
}

// Pad adds before[i] and after[i] elements of value around axis i
// (constant mode; no negative padding).
func Pad(x *Tensor, before, after []int, value float64) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("Pad", x)
	r := x.Rank()
	if len(before) != r || len(after) != r {
		failf("Pad: %s needs %d before and after sizes, got %v and %v", x, r, before, after)
	}
	shape := x.shape.Clone()
	for i := range r {
		if before[i] < 0 || after[i] < 0 {
			failf("Pad: negative padding %v, %v", before, after)
		}
		shape[i] += before[i] + after[i]
	}
	pads := append(slices.Clone(before), after...)
	args := map[string]any{"pads": pads}
	return g.add1("Pad", []*Tensor{x, g.ints64(pads...), ScalarLike(x, value)}, []attribute{{"mode", "constant"}}, args, x.dtype, shape)
}

// Expand broadcasts x to shape (numpy rules; the result has the broadcast of
// both shapes).
func Expand(x *Tensor, shape ...int) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("Expand", x)
	s, ok := broadcastShapes(x.shape, shape)
	if !ok {
		failf("Expand: %s does not broadcast to %v", x, Shape(shape))
	}
	if s.Equal(x.shape) {
		return x
	}
	return g.add1("Expand", []*Tensor{x, g.ints64(shape...)}, nil, nil, x.dtype, s)
}

// vjpSlice: y = x[a:b] → dx = Pad(dy, a, n−b) along the axis.
func vjpSlice(n *node, dy []*Tensor) []*Tensor {
	x := n.inputs[0]
	axis, start, end := n.intAttr("axis"), n.intAttr("start"), n.intAttr("end")
	before, after := make([]int, x.Rank()), make([]int, x.Rank())
	before[axis], after[axis] = start, x.shape[axis]-end
	return []*Tensor{Pad(dy[0], before, after, 0)}
}

// vjpPad: y = pad(x) → dx = the slice of dy where x sits.
func vjpPad(n *node, dy []*Tensor) []*Tensor {
	x, d := n.inputs[0], dy[0]
	pads := n.intsAttr("pads")
	for i := range x.Rank() {
		if pads[i] != 0 || pads[x.Rank()+i] != 0 {
			d = Slice(d, i, pads[i], pads[i]+x.shape[i])
		}
	}
	return []*Tensor{d, nil, nil}
}

// vjpConcat: y = [x₁ … xₙ] → dxᵢ = the i-th piece of dy.
func vjpConcat(n *node, dy []*Tensor) []*Tensor {
	axis := n.intAttr("axis")
	sizes := make([]int, len(n.inputs))
	for i, x := range n.inputs {
		sizes[i] = x.shape[axis]
	}
	return Split(dy[0], axis, sizes...)
}

// vjpSplit: [y₁ … yₙ] = split(x) → dx = [dy₁ … dyₙ], zeros for unused pieces.
func vjpSplit(n *node, dy []*Tensor) []*Tensor {
	parts := make([]*Tensor, len(dy))
	for i, d := range dy {
		if d == nil {
			o := n.outputs[i]
			d = o.g.Zeros(o.dtype, o.shape...)
		}
		parts[i] = d
	}
	return []*Tensor{Concat(n.intAttr("axis"), parts...), nil}
}
