package graph

// Element-wise ops. Binary ops broadcast their inputs numpy-style; both
// inputs must have the same dtype (use Cast, or ScalarLike for constants).

func binaryOp(op string, x, y *Tensor, outType DType, needs func(DType) bool) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph(op, x, y)
	if x.dtype != y.dtype {
		failf("%s: dtypes differ: %s and %s", op, x, y)
	}
	if needs != nil && !needs(x.dtype) {
		failf("%s: unsupported dtype %v (%s)", op, x.dtype, x)
	}
	shape, ok := broadcastShapes(x.shape, y.shape)
	if !ok {
		failf("%s: shapes %v and %v do not broadcast (%s, %s)", op, x.shape, y.shape, x, y)
	}
	if outType == 0 {
		outType = x.dtype
	}
	return g.add1(op, []*Tensor{x, y}, nil, nil, outType, shape)
}

func unaryOp(op string, x *Tensor, needs func(DType) bool) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph(op, x)
	if needs != nil && !needs(x.dtype) {
		failf("%s: unsupported dtype %v (%s)", op, x.dtype, x)
	}
	return g.add1(op, []*Tensor{x}, nil, nil, x.dtype, x.shape)
}

func numeric(d DType) bool { return d != Bool }
func isFloat(d DType) bool { return d.IsFloat() }
func boolean(d DType) bool { return d == Bool }

// Add is x + y.
func Add(x, y *Tensor) *Tensor { return binaryOp("Add", x, y, 0, numeric) }

// Sub is x − y.
func Sub(x, y *Tensor) *Tensor { return binaryOp("Sub", x, y, 0, numeric) }

// Mul is x · y.
func Mul(x, y *Tensor) *Tensor { return binaryOp("Mul", x, y, 0, numeric) }

// Div is x / y.
func Div(x, y *Tensor) *Tensor { return binaryOp("Div", x, y, 0, numeric) }

// Max is the element-wise maximum (the gradient goes to x on ties).
func Max(x, y *Tensor) *Tensor { return binaryOp("Max", x, y, 0, numeric) }

// Min is the element-wise minimum (the gradient goes to x on ties).
func Min(x, y *Tensor) *Tensor { return binaryOp("Min", x, y, 0, numeric) }

// Pow is x raised to the constant power p.
func Pow(x *Tensor, p float64) (out *Tensor) {
	defer guard(x, &out)
	sameGraph("Pow", x)
	return binaryOp("Pow", x, ScalarLike(x, p), 0, isFloat)
}

// Neg is −x.
func Neg(x *Tensor) *Tensor { return unaryOp("Neg", x, numeric) }

// Abs is |x|.
func Abs(x *Tensor) *Tensor { return unaryOp("Abs", x, numeric) }

// Sign is −1, 0 or 1.
func Sign(x *Tensor) *Tensor { return unaryOp("Sign", x, numeric) }

// Exp is eˣ.
func Exp(x *Tensor) *Tensor { return unaryOp("Exp", x, isFloat) }

// Log is the natural logarithm.
func Log(x *Tensor) *Tensor { return unaryOp("Log", x, isFloat) }

// Sqrt is √x.
func Sqrt(x *Tensor) *Tensor { return unaryOp("Sqrt", x, isFloat) }

// Reciprocal is 1/x.
func Reciprocal(x *Tensor) *Tensor { return unaryOp("Reciprocal", x, isFloat) }

// Sigmoid is σ(x) = 1/(1+e⁻ˣ).
func Sigmoid(x *Tensor) *Tensor { return unaryOp("Sigmoid", x, isFloat) }

// Softplus is ln(1+eˣ), composed as max(x,0) + ln(1+e^−|x|), which never
// overflows; ONNX Runtime's CPU Softplus has no float64 kernel.
func Softplus(x *Tensor) (out *Tensor) {
	defer guard(x, &out)
	sameGraph("Softplus", x)
	if !x.dtype.IsFloat() {
		failf("Softplus: needs a float tensor, got %s", x)
	}
	return Add(Relu(x), Log(Exp(Neg(Abs(x))).AddScalar(1)))
}

// Tanh is the hyperbolic tangent.
func Tanh(x *Tensor) *Tensor { return unaryOp("Tanh", x, isFloat) }

// Relu is max(x, 0).
func Relu(x *Tensor) *Tensor { return unaryOp("Relu", x, numeric) }

// Identity is x (a new node; useful to name a value).
func Identity(x *Tensor) *Tensor { return unaryOp("Identity", x, nil) }

// Silu is x·σ(x). In float32 it is Mul(x, Sigmoid(x)), which ONNX Runtime
// fuses into one kernel; in float64 it is x·(½ + ½·tanh(x/2)), the same
// function, because that fusion (QuickGelu) has no float64 kernel and breaks
// the session.
func Silu(x *Tensor) (out *Tensor) {
	defer guard(x, &out)
	sameGraph("Silu", x)
	if x.dtype == Float32 {
		return Mul(x, Sigmoid(x))
	}
	half := ScalarLike(x, 0.5)
	return Mul(x, Add(half, Mul(half, Tanh(Mul(x, half)))))
}

// Square is x·x.
func Square(x *Tensor) *Tensor { return Mul(x, x) }

// StopGradient is x, with no gradient flowing back through it.
func StopGradient(x *Tensor) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("StopGradient", x)
	out = g.add1("Identity", []*Tensor{x}, nil, nil, x.dtype, x.shape)
	out.node.noGrad = true
	return out
}

// Clip clamps x to [lo, hi]; use ±math.Inf for a one-sided clamp.
func Clip(x *Tensor, lo, hi float64) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("Clip", x)
	if !numeric(x.dtype) {
		failf("Clip: unsupported dtype %v (%s)", x.dtype, x)
	}
	if lo > hi {
		failf("Clip: lower bound %g above upper bound %g", lo, hi)
	}
	args := map[string]any{"min": lo, "max": hi}
	return g.add1("Clip", []*Tensor{x, ScalarLike(x, lo), ScalarLike(x, hi)}, nil, args, x.dtype, x.shape)
}

// Cast converts x to dtype (Cast to bool is x ≠ 0).
func Cast(x *Tensor, dtype DType) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("Cast", x)
	if dtype.size() == 0 {
		failf("Cast: unsupported dtype %v", dtype)
	}
	return g.add1("Cast", []*Tensor{x}, []attribute{{"to", dtype}}, nil, dtype, x.shape)
}

// ---- comparisons and logic: bool results, no gradients ----

// Greater is x > y.
func Greater(x, y *Tensor) *Tensor { return binaryOp("Greater", x, y, Bool, numeric) }

// Less is x < y.
func Less(x, y *Tensor) *Tensor { return binaryOp("Less", x, y, Bool, numeric) }

// GreaterOrEqual is x ≥ y.
func GreaterOrEqual(x, y *Tensor) *Tensor { return binaryOp("GreaterOrEqual", x, y, Bool, numeric) }

// LessOrEqual is x ≤ y.
func LessOrEqual(x, y *Tensor) *Tensor { return binaryOp("LessOrEqual", x, y, Bool, numeric) }

// Equal is x = y.
func Equal(x, y *Tensor) *Tensor { return binaryOp("Equal", x, y, Bool, nil) }

// And is the logical x ∧ y.
func And(x, y *Tensor) *Tensor { return binaryOp("And", x, y, Bool, boolean) }

// Or is the logical x ∨ y.
func Or(x, y *Tensor) *Tensor { return binaryOp("Or", x, y, Bool, boolean) }

// Not is the logical ¬x.
func Not(x *Tensor) *Tensor { return unaryOp("Not", x, boolean) }

// Where is cond ? x : y, broadcasting all three.
func Where(cond, x, y *Tensor) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("Where", cond, x, y)
	if cond.dtype != Bool {
		failf("Where: condition %s is not bool", cond)
	}
	if x.dtype != y.dtype {
		failf("Where: dtypes differ: %s and %s", x, y)
	}
	s, ok := broadcastShapes(cond.shape, x.shape)
	if ok {
		s, ok = broadcastShapes(s, y.shape)
	}
	if !ok {
		failf("Where: shapes %v, %v and %v do not broadcast", cond.shape, x.shape, y.shape)
	}
	return g.add1("Where", []*Tensor{cond, x, y}, nil, nil, x.dtype, s)
}

// ---- method forms of the most used ops ----

// Add is x + y.
func (x *Tensor) Add(y *Tensor) *Tensor { return Add(x, y) }

// Sub is x − y.
func (x *Tensor) Sub(y *Tensor) *Tensor { return Sub(x, y) }

// Mul is x · y.
func (x *Tensor) Mul(y *Tensor) *Tensor { return Mul(x, y) }

// Div is x / y.
func (x *Tensor) Div(y *Tensor) *Tensor { return Div(x, y) }

// Neg is −x.
func (x *Tensor) Neg() *Tensor { return Neg(x) }

// AddScalar is x + v.
func (x *Tensor) AddScalar(v float64) *Tensor { return Add(x, ScalarLike(x, v)) }

// MulScalar is x · v.
func (x *Tensor) MulScalar(v float64) *Tensor { return Mul(x, ScalarLike(x, v)) }

// MatMul is the matrix product x·y.
func (x *Tensor) MatMul(y *Tensor) *Tensor { return MatMul(x, y) }

// Reshape gives x a new shape (one dimension may be −1).
func (x *Tensor) Reshape(shape ...int) *Tensor { return Reshape(x, shape...) }

// Transpose permutes the axes (reverses them when perm is empty).
func (x *Tensor) Transpose(perm ...int) *Tensor { return Transpose(x, perm...) }
