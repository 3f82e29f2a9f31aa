package graph

// Ops of neural-network layers: softmax, one-hot, embedding lookup.

// Softmax is exp(x)/Σexp(x) along axis.
func Softmax(x *Tensor, axis int) *Tensor { return softmaxLike("Softmax", x, axis) }

// LogSoftmax is x − log Σexp(x) along axis, computed stably.
func LogSoftmax(x *Tensor, axis int) *Tensor { return softmaxLike("LogSoftmax", x, axis) }

func softmaxLike(op string, x *Tensor, axis int) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph(op, x)
	if !x.dtype.IsFloat() {
		failf("%s: needs a float tensor, got %s", op, x)
	}
	axis = normAxis(op, axis, x.Rank())
	return g.add1(op, []*Tensor{x}, []attribute{{"axis", axis}}, nil, x.dtype, x.shape)
}

// vjpSoftmax: y = softmax(x) → dx = y·(dy − Σ dy·y).
func vjpSoftmax(n *node, dy []*Tensor) []*Tensor {
	y, d, axis := n.outputs[0], dy[0], n.intAttr("axis")
	return []*Tensor{Mul(y, Sub(d, ReduceSumKeep(Mul(d, y), axis)))}
}

// vjpLogSoftmax: y = logsoftmax(x) → dx = dy − exp(y)·Σ dy.
func vjpLogSoftmax(n *node, dy []*Tensor) []*Tensor {
	y, d, axis := n.outputs[0], dy[0], n.intAttr("axis")
	return []*Tensor{Sub(d, Mul(Exp(y), ReduceSumKeep(d, axis)))}
}

// OneHot turns int64 indices into one-hot vectors of length depth along a
// new last axis, in dtype: 1 at the index, 0 elsewhere, and all zeros for an
// index outside [0, depth) (so −1 can mark an ignored target). It is built as
// Cast(Equal(indices, 0…depth−1)): ONNX Runtime's OneHot has no float64
// kernel.
func OneHot(indices *Tensor, depth int, dtype DType) (out *Tensor) {
	defer guard(indices, &out)
	g := sameGraph("OneHot", indices)
	if indices.dtype != Int64 {
		failf("OneHot: indices %s are not int64", indices)
	}
	if depth <= 0 || dtype.size() == 0 {
		failf("OneHot: bad depth %d or dtype %v", depth, dtype)
	}
	hot := Equal(Unsqueeze(indices, -1), g.Arange(Int64, depth))
	if dtype == Bool {
		return hot
	}
	return Cast(hot, dtype)
}

// Gather picks slices of data along axis at int64 indices: the output shape
// is data.shape[:axis] + indices.shape + data.shape[axis+1:]. With axis 0 and
// an embedding table as data, it is the embedding lookup.
func Gather(data, indices *Tensor, axis int) (out *Tensor) {
	defer guard(data, &out)
	g := sameGraph("Gather", data, indices)
	if indices.dtype != Int64 {
		failf("Gather: indices %s are not int64", indices)
	}
	axis = normAxis("Gather", axis, data.Rank())
	shape := append(append(data.shape[:axis].Clone(), indices.shape...), data.shape[axis+1:]...)
	return g.add1("Gather", []*Tensor{data, indices}, []attribute{{"axis", axis}}, nil, data.dtype, shape)
}

// vjpGather: y = data[idx] along axis → ddata = scatter-add of dy at idx
// (ScatterND with reduction "add" on data moved so that axis comes first).
func vjpGather(n *node, dy []*Tensor) []*Tensor {
	data, idx, d := n.inputs[0], n.inputs[1], dy[0]
	axis, q, r := n.intAttr("axis"), n.inputs[1].Rank(), n.inputs[0].Rank()
	// data axes in the order [axis, the others]
	perm := []int{axis}
	for i := range r {
		if i != axis {
			perm = append(perm, i)
		}
	}
	// dy axes in the order [indices axes, the others]
	dyPerm := make([]int, 0, d.Rank())
	for i := range q {
		dyPerm = append(dyPerm, axis+i)
	}
	for i := range d.Rank() {
		if i < axis || i >= axis+q {
			dyPerm = append(dyPerm, i)
		}
	}
	if axis != 0 {
		d = Transpose(d, dyPerm...)
	}
	tshape := make(Shape, r)
	for i, p := range perm {
		tshape[i] = data.shape[p]
	}
	g := data.g
	zeros := g.Zeros(data.dtype, tshape...)
	acc := g.add1("ScatterND", []*Tensor{zeros, Unsqueeze(idx, -1), d}, []attribute{{"reduction", "add"}}, nil, data.dtype, tshape)
	if axis != 0 {
		acc = Transpose(acc, inverse(perm)...)
	}
	return []*Tensor{acc, nil}
}

// inverse is the inverse permutation.
func inverse(perm []int) []int {
	inv := make([]int, len(perm))
	for i, p := range perm {
		inv[p] = i
	}
	return inv
}

// ScatterAdd is data with each row of updates added at the index tuple of
// indices (ONNX ScatterND, reduction "add"): indices (…, k) int64 address
// the first k axes of data, updates has shape indices.shape[:−1] +
// data.shape[k:]. Repeated indices add up. It has no gradient rule: it serves
// index bookkeeping (and the gradient of Gather).
func ScatterAdd(data, indices, updates *Tensor) (out *Tensor) {
	defer guard(data, &out)
	g := sameGraph("ScatterAdd", data, indices, updates)
	if indices.dtype != Int64 {
		failf("ScatterAdd: indices %s are not int64", indices)
	}
	if data.dtype != updates.dtype {
		failf("ScatterAdd: dtypes differ: %s and %s", data, updates)
	}
	q := indices.Rank()
	if q == 0 {
		failf("ScatterAdd: indices %s have no index axis", indices)
	}
	k := indices.shape[q-1]
	if k < 1 || k > data.Rank() {
		failf("ScatterAdd: index tuples of %d for data %s", k, data)
	}
	want := append(indices.shape[:q-1].Clone(), data.shape[k:]...)
	if !updates.shape.Equal(want) {
		failf("ScatterAdd: updates %s, want shape %v", updates, want)
	}
	return g.add1("ScatterND", []*Tensor{data, indices, updates}, []attribute{{"reduction", "add"}}, nil, data.dtype, data.shape)
}
