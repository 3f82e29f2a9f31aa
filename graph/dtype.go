package graph

import (
	"fmt"
	"strings"

	"github.com/netssm/netssm/onnxpb"
)

// DType is the element type of a tensor. Its values are ONNX's
// TensorProto.DataType codes.
type DType int32

// The element types the builder knows.
const (
	Float32 = DType(onnxpb.TensorProto_FLOAT)
	Float64 = DType(onnxpb.TensorProto_DOUBLE)
	Int64   = DType(onnxpb.TensorProto_INT64)
	Bool    = DType(onnxpb.TensorProto_BOOL)
)

// String names the type as Go does (float32, int64, …).
func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	case Int64:
		return "int64"
	case Bool:
		return "bool"
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// IsFloat reports whether d is a floating-point type (the types gradients
// flow through).
func (d DType) IsFloat() bool { return d == Float32 || d == Float64 }

// size is the number of bytes of one element.
func (d DType) size() int {
	switch d {
	case Float32:
		return 4
	case Float64, Int64:
		return 8
	case Bool:
		return 1
	}
	return 0
}

// Shape is a static tensor shape; the empty shape is a scalar.
type Shape []int

// Rank is the number of axes.
func (s Shape) Rank() int { return len(s) }

// Size is the number of elements (1 for a scalar).
func (s Shape) Size() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// Equal reports whether two shapes are the same.
func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

// Clone returns a copy that the caller may modify.
func (s Shape) Clone() Shape { return append(Shape{}, s...) }

// Int64s converts the shape to the int64 dimensions ONNX and ONNX Runtime use.
func (s Shape) Int64s() []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

// String prints the shape as (2, 3, 4).
func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// broadcastShapes applies numpy broadcasting to two shapes; ok is false when
// they are incompatible.
func broadcastShapes(a, b Shape) (Shape, bool) {
	n := max(len(a), len(b))
	out := make(Shape, n)
	for i := range n {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, false
		}
	}
	return out, true
}

// normAxis turns a possibly negative axis into 0..rank-1, or panics naming op.
func normAxis(op string, axis, rank int) int {
	if axis < -rank || axis >= rank {
		failf("%s: axis %d out of range for rank %d", op, axis, rank)
	}
	if axis < 0 {
		axis += rank
	}
	return axis
}
