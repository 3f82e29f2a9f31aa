package graph

// MatMul is the numpy matrix product: the last two axes multiply, the leading
// (batch) axes broadcast; a 1-D x is a row vector and a 1-D y a column vector,
// and the promoted axis is removed from the result.
func MatMul(x, y *Tensor) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("MatMul", x, y)
	if x.dtype != y.dtype || !x.dtype.IsFloat() {
		failf("MatMul: needs two tensors of one float type, got %s and %s", x, y)
	}
	if x.Rank() == 0 || y.Rank() == 0 {
		failf("MatMul: scalars are not matrices: %s, %s", x, y)
	}
	xs, ys := x.shape, y.shape
	if len(xs) == 1 {
		xs = Shape{1, xs[0]}
	}
	if len(ys) == 1 {
		ys = Shape{ys[0], 1}
	}
	m, k := xs[len(xs)-2], xs[len(xs)-1]
	k2, n := ys[len(ys)-2], ys[len(ys)-1]
	if k != k2 {
		failf("MatMul: inner dimensions differ: %v · %v (%s, %s)", x.shape, y.shape, x, y)
	}
	batch, ok := broadcastShapes(xs[:len(xs)-2], ys[:len(ys)-2])
	if !ok {
		failf("MatMul: batch axes %v and %v do not broadcast", xs[:len(xs)-2], ys[:len(ys)-2])
	}
	shape := append(batch, m, n)
	if x.Rank() == 1 {
		shape = append(shape[:len(shape)-2], n)
	}
	if y.Rank() == 1 {
		shape = shape[:len(shape)-1]
	}
	return g.add1("MatMul", []*Tensor{x, y}, nil, nil, x.dtype, shape)
}

// vjpMatMul: Z = X·Y → dX = dZ·Yᵀ, dY = Xᵀ·dZ, summed over broadcast batch axes.
// 1-D operands are first promoted to matrices as in the forward.
func vjpMatMul(n *node, dz []*Tensor) []*Tensor {
	x, y, d := n.inputs[0], n.inputs[1], dz[0]
	x2, y2 := x, y
	if x.Rank() == 1 {
		x2 = Reshape(x, 1, x.shape[0])
	}
	if y.Rank() == 1 {
		y2 = Reshape(y, y.shape[0], 1)
	}
	zs := d.shape.Clone() // the shape of x2·y2
	if y.Rank() == 1 {
		zs = append(zs, 1)
	}
	if x.Rank() == 1 {
		zs = append(zs[:len(zs)-1], 1, zs[len(zs)-1])
	}
	d = Reshape(d, zs...)
	dx := sumToShape(MatMul(d, swapLast(y2)), x2.shape)
	var dy *Tensor
	if y2.Rank() == 2 && x2.Rank() > 2 {
		// A weight shared by every batch row (the usual layer): fold the
		// batch axes into the rows, so no per-batch dY is materialised.
		k, n := y2.shape[0], y2.shape[1]
		dy = MatMul(Transpose(Reshape(x2, -1, k)), Reshape(d, -1, n))
	} else {
		dy = sumToShape(MatMul(swapLast(x2), d), y2.shape)
	}
	return []*Tensor{Reshape(dx, x.shape...), Reshape(dy, y.shape...)}
}

// swapLast transposes the last two axes.
func swapLast(x *Tensor) *Tensor {
	perm := make([]int, x.Rank())
	for i := range perm {
		perm[i] = i
	}
	r := len(perm)
	perm[r-1], perm[r-2] = perm[r-2], perm[r-1]
	return Transpose(x, perm...)
}
