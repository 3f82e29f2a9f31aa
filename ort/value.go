package ort

import ortgo "github.com/yalue/onnxruntime_go"

// Value is a tensor ONNX Runtime reads or writes in a Run (Session.RunValues,
// Binding). Other packages use these names, never onnxruntime_go's: this
// package is the only one that imports it.
type Value = ortgo.Value

// HostTensor is a tensor in Go memory that ONNX Runtime reads and writes in
// place: GetData returns its elements, Destroy releases it.
type HostTensor[T ortgo.TensorData] = ortgo.Tensor[T]

// Shape is a tensor's dimensions.
type Shape = ortgo.Shape

// IOInfo describes one input or output of a model: its name, element type
// and dimensions.
type IOInfo = ortgo.InputOutputInfo

// ElemInt64 is the element type of an int64 tensor in IOInfo.DataType.
const ElemInt64 = ortgo.TensorElementDataTypeInt64

// NewHostTensor allocates a zeroed host tensor of the given shape.
func NewHostTensor[T ortgo.TensorData](shape ...int64) (*HostTensor[T], error) {
	return ortgo.NewEmptyTensor[T](ortgo.NewShape(shape...))
}

// HostTensorOf wraps data (not copied) as a host tensor of the given shape.
func HostTensorOf[T ortgo.TensorData](shape []int64, data []T) (*HostTensor[T], error) {
	return ortgo.NewTensor(ortgo.NewShape(shape...), data)
}
