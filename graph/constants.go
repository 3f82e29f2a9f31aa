package graph

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
)

// Const adds a constant tensor holding data, a []float32, []float64, []int64
// or []bool of shape's size (a scalar when shape is empty). Equal constants
// (same dtype, shape and bytes) are stored once.
func (g *Graph) Const(data any, shape ...int) (out *Tensor) {
	defer guard(&Tensor{g: g, dtype: g.float, shape: shape}, &out)
	if g.err != nil {
		panic(buildError{errSkipped})
	}
	dtype, raw, n := encode(data)
	if n != Shape(shape).Size() {
		failf("Const: %d values for shape %v (%d elements)", n, Shape(shape), Shape(shape).Size())
	}
	return g.constant(dtype, shape, raw)
}

// Scalar is a constant scalar of the graph's float type.
func (g *Graph) Scalar(v float64) *Tensor { return g.Full(g.float, v) }

// Full is a constant of the given type and shape with every element v,
// stored as one scalar and Expanded (once per shape) when the shape is not a
// scalar.
func (g *Graph) Full(dtype DType, v float64, shape ...int) (out *Tensor) {
	defer guard(&Tensor{g: g, dtype: dtype, shape: shape}, &out)
	if g.err != nil {
		panic(buildError{errSkipped})
	}
	s := g.constant(dtype, nil, encodeScalar(dtype, v))
	if len(shape) == 0 {
		return s
	}
	key := fmt.Sprint("full|", s.name, Shape(shape))
	if t, ok := g.byKey[key]; ok {
		return t
	}
	out = Expand(s, shape...)
	g.byKey[key] = out
	return out
}

// Zeros is Full(dtype, 0, shape...).
func (g *Graph) Zeros(dtype DType, shape ...int) *Tensor { return g.Full(dtype, 0, shape...) }

// Ones is Full(dtype, 1, shape...).
func (g *Graph) Ones(dtype DType, shape ...int) *Tensor { return g.Full(dtype, 1, shape...) }

// Arange is the constant vector 0, 1, …, n−1 of the given type.
func (g *Graph) Arange(dtype DType, n int) (out *Tensor) {
	defer guard(&Tensor{g: g, dtype: dtype, shape: Shape{n}}, &out)
	if g.err != nil {
		panic(buildError{errSkipped})
	}
	raw := make([]byte, 0, n*dtype.size())
	for i := range n {
		raw = append(raw, encodeScalar(dtype, float64(i))...)
	}
	return g.constant(dtype, Shape{n}, raw)
}

// ScalarLike is a constant scalar v of x's dtype, for arithmetic with x.
func ScalarLike(x *Tensor, v float64) (out *Tensor) {
	defer guard(x, &out)
	g := sameGraph("ScalarLike", x)
	return g.constant(x.dtype, nil, encodeScalar(x.dtype, v))
}

// ints64 is a constant int64 vector, the form opset 17 wants for axes,
// shapes, starts and sizes.
func (g *Graph) ints64(vs ...int) *Tensor {
	raw := make([]byte, 0, 8*len(vs))
	for _, v := range vs {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(int64(v)))
	}
	return g.constant(Int64, Shape{len(vs)}, raw)
}

// constant adds (or finds) the constant with these bytes.
func (g *Graph) constant(dtype DType, shape Shape, raw []byte) *Tensor {
	key := fmt.Sprint(int32(dtype), shape, "|")
	if len(raw) <= 64 {
		key += string(raw)
	} else { // large constants are keyed by their digest
		sum := sha256.Sum256(raw)
		key += string(sum[:])
	}
	if t, ok := g.byKey[key]; ok {
		return t
	}
	name := fmt.Sprintf("const.%d", len(g.consts))
	for g.names[name] {
		name += "_"
	}
	g.names[name] = true
	t := &Tensor{g: g, name: name, dtype: dtype, shape: shape.Clone(), kind: kindConst, data: raw}
	g.consts = append(g.consts, t)
	g.byKey[key] = t
	return t
}

// encode turns a Go slice into ONNX raw_data (little-endian) bytes.
func encode(data any) (DType, []byte, int) {
	switch d := data.(type) {
	case []float32:
		raw := make([]byte, 0, 4*len(d))
		for _, v := range d {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
		return Float32, raw, len(d)
	case []float64:
		raw := make([]byte, 0, 8*len(d))
		for _, v := range d {
			raw = binary.LittleEndian.AppendUint64(raw, math.Float64bits(v))
		}
		return Float64, raw, len(d)
	case []int64:
		raw := make([]byte, 0, 8*len(d))
		for _, v := range d {
			raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
		}
		return Int64, raw, len(d)
	case []bool:
		raw := make([]byte, len(d))
		for i, v := range d {
			if v {
				raw[i] = 1
			}
		}
		return Bool, raw, len(d)
	}
	failf("unsupported constant data %T (want []float32, []float64, []int64 or []bool)", data)
	return 0, nil, 0
}

func encodeScalar(dtype DType, v float64) []byte {
	switch dtype {
	case Float32:
		return binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(v)))
	case Float64:
		return binary.LittleEndian.AppendUint64(nil, math.Float64bits(v))
	case Int64:
		return binary.LittleEndian.AppendUint64(nil, uint64(int64(v)))
	case Bool:
		if v != 0 {
			return []byte{1}
		}
		return []byte{0}
	}
	failf("unsupported dtype %v", dtype)
	return nil
}

func decodeFloat32(raw []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(raw)) }
func decodeFloat64(raw []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(raw)) }
