package graph

import (
	"fmt"
	"slices"
	"sort"
)

// vjp is the vector-Jacobian product rule of one op type: given the node and
// the gradients of its outputs (nil for an output that does not reach the
// loss), it returns the gradients of its inputs (nil where none flows). A
// returned gradient may keep broadcast axes: Gradients sums them away with
// sumToShape and then checks dtype and shape.
type vjp func(n *node, dy []*Tensor) []*Tensor

// vjps is the registry: one rule per ONNX op type. The simple rules sit here,
// each with its formula; the longer ones sit beside their op.
var vjps map[string]vjp

func init() {
	vjps = map[string]vjp{
		// z = x + y → dx = dz ; dy = dz
		"Add": func(n *node, d []*Tensor) []*Tensor { return []*Tensor{d[0], d[0]} },
		// z = x − y → dx = dz ; dy = −dz (negated after the broadcast sum: fewer elements)
		"Sub": func(n *node, d []*Tensor) []*Tensor {
			return []*Tensor{d[0], Neg(sumToShape(d[0], n.inputs[1].shape))}
		},
		// z = x·y → dx = dz·y ; dy = dz·x
		"Mul": func(n *node, d []*Tensor) []*Tensor {
			return []*Tensor{Mul(d[0], n.inputs[1]), Mul(d[0], n.inputs[0])}
		},
		// z = x/y → dx = dz/y ; dy = −dz·z/y (negated after the broadcast sum)
		"Div": func(n *node, d []*Tensor) []*Tensor {
			dx := Div(d[0], n.inputs[1])
			return []*Tensor{dx, Neg(sumToShape(Mul(dx, n.outputs[0]), n.inputs[1].shape))}
		},
		// y = −x → dx = −dy
		"Neg": func(n *node, d []*Tensor) []*Tensor { return []*Tensor{Neg(d[0])} },
		// y = |x| → dx = dy·sign(x)
		"Abs": func(n *node, d []*Tensor) []*Tensor { return []*Tensor{Mul(d[0], Sign(n.inputs[0]))} },
		// y = eˣ → dx = dy·y
		"Exp": func(n *node, d []*Tensor) []*Tensor { return []*Tensor{Mul(d[0], n.outputs[0])} },
		// y = ln x → dx = dy/x
		"Log": func(n *node, d []*Tensor) []*Tensor { return []*Tensor{Div(d[0], n.inputs[0])} },
		// y = √x → dx = dy/(2y)
		"Sqrt": func(n *node, d []*Tensor) []*Tensor {
			return []*Tensor{Div(d[0], n.outputs[0].MulScalar(2))}
		},
		// y = 1/x → dx = −dy·y²
		"Reciprocal": func(n *node, d []*Tensor) []*Tensor {
			return []*Tensor{Neg(Mul(d[0], Square(n.outputs[0])))}
		},
		// y = xᵖ (p constant) → dx = dy·p·xᵖ⁻¹
		"Pow": func(n *node, d []*Tensor) []*Tensor {
			p := n.inputs[1].scalarValue()
			return []*Tensor{Mul(d[0], Pow(n.inputs[0], p-1).MulScalar(p)), nil}
		},
		// y = σ(x) → dx = dy·y·(1−y)
		"Sigmoid": func(n *node, d []*Tensor) []*Tensor {
			y := n.outputs[0]
			return []*Tensor{Mul(d[0], Mul(y, Sub(ScalarLike(y, 1), y)))}
		},
		// y = tanh x → dx = dy·(1−y²)
		"Tanh": func(n *node, d []*Tensor) []*Tensor {
			y := n.outputs[0]
			return []*Tensor{Mul(d[0], Sub(ScalarLike(y, 1), Square(y)))}
		},
		// y = max(x,0) → dx = dy where x > 0
		"Relu": func(n *node, d []*Tensor) []*Tensor {
			x := n.inputs[0]
			return []*Tensor{Where(Greater(x, ScalarLike(x, 0)), d[0], ScalarLike(x, 0))}
		},
		// z = max(x,y) → dx = dz where x ≥ y ; dy = dz where x < y
		"Max": func(n *node, d []*Tensor) []*Tensor {
			return pick(GreaterOrEqual(n.inputs[0], n.inputs[1]), d[0])
		},
		// z = min(x,y) → dx = dz where x ≤ y ; dy = dz where x > y
		"Min": func(n *node, d []*Tensor) []*Tensor {
			return pick(LessOrEqual(n.inputs[0], n.inputs[1]), d[0])
		},
		// y = clip(x, lo, hi) → dx = dy where lo ≤ x ≤ hi
		"Clip": func(n *node, d []*Tensor) []*Tensor {
			x := n.inputs[0]
			in := And(GreaterOrEqual(x, n.inputs[1]), LessOrEqual(x, n.inputs[2]))
			return []*Tensor{Where(in, d[0], ScalarLike(x, 0)), nil, nil}
		},
		// y = x → dx = dy
		"Identity": func(n *node, d []*Tensor) []*Tensor { return []*Tensor{d[0]} },
		// y = cast(x) → dx = cast back(dy), for float x
		"Cast": func(n *node, d []*Tensor) []*Tensor { return []*Tensor{Cast(d[0], n.inputs[0].dtype)} },
		// z = c ? x : y → dx = c ? dz : 0 ; dy = c ? 0 : dz
		"Where": func(n *node, d []*Tensor) []*Tensor { return append([]*Tensor{nil}, pick(n.inputs[0], d[0])...) },
		// y = xᵀ → dx = dyᵀ with the inverse permutation
		"Transpose": func(n *node, d []*Tensor) []*Tensor {
			return []*Tensor{Transpose(d[0], inverse(n.intsAttr("perm"))...)}
		},
		// reshapes → dx = dy in x's shape
		"Reshape":   reshapeBack,
		"Unsqueeze": reshapeBack,
		"Squeeze":   reshapeBack,
		// y = broadcast(x) → dx = dy summed over the broadcast axes (by Gradients)
		"Expand": func(n *node, d []*Tensor) []*Tensor { return []*Tensor{d[0], nil} },

		"MatMul":              vjpMatMul,
		"Slice":               vjpSlice,
		"Pad":                 vjpPad,
		"Concat":              vjpConcat,
		"Split":               vjpSplit,
		"ReduceSum":           vjpReduceSum,
		"ReduceMean":          vjpReduceMean,
		"ReduceMax":           vjpReduceMax,
		"CumSum":              vjpCumSum,
		"Softmax":             vjpSoftmax,
		"LogSoftmax":          vjpLogSoftmax,
		"Gather":              vjpGather,
		"SSDScan":             vjpSSDScan,
		"ConvSilu":            vjpConvSilu,
		"RMSNorm":             vjpRMSNorm,
		"GatedRMSNorm":        vjpGatedRMSNorm,
		"SoftmaxCrossEntropy": vjpSoftmaxCrossEntropy,
	}
}

func reshapeBack(n *node, d []*Tensor) []*Tensor {
	grads := make([]*Tensor, len(n.inputs))
	grads[0] = Reshape(d[0], n.inputs[0].shape...)
	return grads
}

// pick routes d to the first output where cond holds and to the second
// elsewhere.
func pick(cond, d *Tensor) []*Tensor {
	zero := ScalarLike(d, 0)
	return []*Tensor{Where(cond, d, zero), Where(cond, zero, d)}
}

// GradientOps lists the op types that have a gradient rule, sorted.
func GradientOps() []string {
	ops := make([]string, 0, len(vjps))
	for op := range vjps {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}

// sumToShape sums the broadcast axes of grad away so that it has shape: the
// one place where broadcasting is undone.
func sumToShape(grad *Tensor, shape Shape) *Tensor {
	if grad.shape.Equal(shape) {
		return grad
	}
	axes, ok := broadcastAxes(shape, grad.shape)
	if !ok {
		failf("gradient %s does not broadcast from shape %v", grad, shape)
	}
	return Reshape(ReduceSum(grad, axes...), shape...)
}

// broadcastAxes lists the axes of to that broadcasting from adds or
// stretches; ok is false when from does not broadcast to to.
func broadcastAxes(from, to Shape) (axes []int, ok bool) {
	extra := len(to) - len(from)
	if extra < 0 {
		return nil, false
	}
	for i, d := range to {
		j := i - extra
		switch {
		case j < 0 || (from[j] == 1 && d != 1):
			axes = append(axes, i)
		case from[j] != d:
			return nil, false
		}
	}
	return axes, true
}

// Gradients returns d loss / d x for each x in wrt, as new nodes of the
// loss's graph. loss must be a float scalar (or hold one element). A tensor
// of wrt that the loss does not depend on gets zeros. It fails, naming the op,
// when the path from a tensor to the loss crosses an op without a rule.
func Gradients(loss *Tensor, wrt []*Tensor) (grads []*Tensor, err error) {
	if loss == nil {
		return nil, fmt.Errorf("gradients: loss is nil")
	}
	g := loss.g
	if g.err != nil {
		return nil, g.err
	}
	exit := g.Scope("grad")
	defer exit()
	defer func() {
		if r := recover(); r != nil {
			be, ok := r.(buildError)
			if !ok {
				panic(r)
			}
			g.fail(be.err)
		}
		if g.err != nil {
			grads, err = nil, g.err
		}
	}()
	return g.gradients(loss, wrt), nil
}

func (g *Graph) gradients(loss *Tensor, wrt []*Tensor) []*Tensor {
	if !loss.dtype.IsFloat() || loss.shape.Size() != 1 {
		failf("Gradients: the loss must be a float scalar, got %s", loss)
	}
	// active: tensors that depend on some tensor of wrt through float values.
	active := map[*Tensor]bool{}
	for i, x := range wrt {
		if x == nil || x.g != g {
			failf("Gradients: wrt[%d] is nil or from another graph", i)
		}
		if !x.dtype.IsFloat() {
			failf("Gradients: wrt[%d] = %s is not a float tensor", i, x)
		}
		active[x] = true
	}
	var path []*node
	for _, n := range g.nodes {
		if n.noGrad {
			continue
		}
		if slices.ContainsFunc(n.inputs, func(t *Tensor) bool { return active[t] }) {
			for _, o := range n.outputs {
				if o.dtype.IsFloat() {
					active[o] = true
				}
			}
			path = append(path, n)
		}
		if n == loss.node {
			break
		}
	}
	// needed: tensors the loss depends on.
	needed := map[*Tensor]bool{loss: true}
	for i := len(path) - 1; i >= 0; i-- {
		n := path[i]
		if slices.ContainsFunc(n.outputs, func(t *Tensor) bool { return needed[t] }) {
			for _, in := range n.inputs {
				needed[in] = true
			}
		}
	}
	// Walk back, summing contributions per tensor.
	parts := map[*Tensor][]*Tensor{loss: {g.Full(loss.dtype, 1, loss.shape...)}}
	total := func(t *Tensor) *Tensor {
		ps := parts[t]
		if len(ps) == 0 {
			return nil
		}
		sum := ps[0]
		for _, p := range ps[1:] {
			sum = Add(sum, p)
		}
		parts[t] = []*Tensor{sum}
		return sum
	}
	for i := len(path) - 1; i >= 0; i-- {
		n := path[i]
		dy := make([]*Tensor, len(n.outputs))
		flows := false
		for j, o := range n.outputs {
			if needed[o] {
				dy[j] = total(o)
				flows = flows || dy[j] != nil
			}
		}
		if !flows {
			continue
		}
		rule, ok := vjps[n.op]
		if !ok {
			failf("Gradients: op %s (node %s) has no gradient rule, and the loss depends on %s through it", n.op, n.name, describe(wrt, active, n))
		}
		dx := rule(n, dy)
		if len(dx) < len(n.inputs) {
			dx = append(dx, make([]*Tensor, len(n.inputs)-len(dx))...)
		}
		for j, in := range n.inputs {
			if !active[in] || !needed[in] || dx[j] == nil {
				continue
			}
			d := dx[j]
			if _, ok := broadcastAxes(in.shape, d.shape); !ok || d.dtype != in.dtype {
				failf("Gradients: the rule of %s (node %s) gave %s for input %d, %s", n.op, n.name, d, j, in)
			}
			parts[in] = append(parts[in], sumToShape(d, in.shape))
		}
	}
	grads := make([]*Tensor, len(wrt))
	for i, x := range wrt {
		if d := total(x); d != nil {
			grads[i] = d
		} else {
			grads[i] = g.Zeros(x.dtype, x.shape...)
		}
	}
	return grads
}

// describe names the wrt tensors that reach node n, for error messages.
func describe(wrt []*Tensor, active map[*Tensor]bool, n *node) string {
	for _, in := range n.inputs {
		if active[in] {
			return in.String()
		}
	}
	return fmt.Sprint(wrt)
}

// scalarValue decodes a scalar float constant (the exponent of Pow).
func (t *Tensor) scalarValue() float64 {
	if t.kind != kindConst || t.shape.Size() != 1 {
		failf("%s is not a constant scalar", t)
	}
	dt, raw := t.dtype, t.data
	switch dt {
	case Float32:
		return float64(decodeFloat32(raw))
	case Float64:
		return decodeFloat64(raw)
	}
	failf("%s is not a float constant", t)
	return 0
}
