package ort

import (
	"fmt"

	ortgo "github.com/yalue/onnxruntime_go"
)

// Tensor is a host tensor: a shape and a Go slice of one of the supported
// element types ([]float32, []float64, []int64, []int32, []bool, []uint8,
// []uint16), row-major.
type Tensor struct {
	Shape []int64
	Data  any
}

// Element is the set of element types a Tensor can hold.
type Element interface {
	~float32 | ~float64 | ~int64 | ~int32 | ~bool | ~uint8 | ~uint16
}

// NewTensor wraps data (not copied) with a shape.
func NewTensor[T Element](shape []int64, data []T) *Tensor {
	return &Tensor{Shape: append([]int64(nil), shape...), Data: data}
}

// Float32 returns the data as []float32 or panics (a programming error).
func (t *Tensor) Float32() []float32 { return t.Data.([]float32) }

// Float64 returns the data as []float64 or panics (a programming error).
func (t *Tensor) Float64() []float64 { return t.Data.([]float64) }

// Int64 returns the data as []int64 or panics (a programming error).
func (t *Tensor) Int64() []int64 { return t.Data.([]int64) }

// Len is the number of elements the shape holds.
func (t *Tensor) Len() int {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return int(n)
}

func checkLen[T any](shape []int64, data []T) error {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	if int64(len(data)) != n {
		return fmt.Errorf("shape %v holds %d elements, data has %d", shape, n, len(data))
	}
	return nil
}

func newValue[T ortgo.TensorData](shape []int64, data []T) (ortgo.Value, error) {
	if err := checkLen(shape, data); err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return ortgo.NewEmptyTensor[T](ortgo.NewShape(shape...))
	}
	return ortgo.NewTensor(ortgo.NewShape(shape...), data)
}

// value makes an ONNX Runtime value that shares the tensor's memory.
func (t *Tensor) value() (ortgo.Value, error) {
	switch d := t.Data.(type) {
	case []float32:
		return newValue(t.Shape, d)
	case []float64:
		return newValue(t.Shape, d)
	case []int64:
		return newValue(t.Shape, d)
	case []int32:
		return newValue(t.Shape, d)
	case []bool:
		return newValue(t.Shape, d)
	case []uint8:
		return newValue(t.Shape, d)
	case []uint16:
		return newValue(t.Shape, d)
	}
	return nil, fmt.Errorf("unsupported tensor data %T", t.Data)
}

func copyOut[T ortgo.TensorData](v *ortgo.Tensor[T]) *Tensor {
	return &Tensor{Shape: append([]int64(nil), v.GetShape()...), Data: append([]T(nil), v.GetData()...)}
}

// fromValue copies an ONNX Runtime output into a Go-owned Tensor.
func fromValue(v ortgo.Value) (*Tensor, error) {
	switch x := v.(type) {
	case *ortgo.Tensor[float32]:
		return copyOut(x), nil
	case *ortgo.Tensor[float64]:
		return copyOut(x), nil
	case *ortgo.Tensor[int64]:
		return copyOut(x), nil
	case *ortgo.Tensor[int32]:
		return copyOut(x), nil
	case *ortgo.Tensor[bool]:
		return copyOut(x), nil
	case *ortgo.Tensor[uint8]:
		return copyOut(x), nil
	case *ortgo.Tensor[uint16]:
		return copyOut(x), nil
	}
	return nil, fmt.Errorf("unsupported output value %T", v)
}
