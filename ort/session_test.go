package ort_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/netssm/netssm/onnxpb"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

// addMulModel is y = (a + b) * 2, float32, shape (2, 3), written directly as
// an ONNX ModelProto so this test depends on nothing but the protobuf bindings.
func addMulModel(t *testing.T) []byte {
	vi := func(name string) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
			Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
				{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 2}},
				{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 3}},
			}},
		}}}}
	}
	m := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("add_mul"),
			Input:       []*onnxpb.ValueInfoProto{vi("a"), vi("b")},
			Output:      []*onnxpb.ValueInfoProto{vi("y")},
			Initializer: []*onnxpb.TensorProto{{Name: proto.String("two"), DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{2}}},
			Node: []*onnxpb.NodeProto{
				{OpType: proto.String("Add"), Input: []string{"a", "b"}, Output: []string{"s"}, Name: proto.String("add")},
				{OpType: proto.String("Mul"), Input: []string{"s", "two"}, Output: []string{"y"}, Name: proto.String("mul")},
			},
		},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSessionRunsAGraphBuiltInGo(t *testing.T) {
	info := orttest.Init(t)
	if info.Version != ort.Version {
		t.Fatalf("ONNX Runtime %s, want %s", info.Version, ort.Version)
	}
	s, err := ort.NewSession(addMulModel(t), ort.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := strings.Join(s.InputNames(), ","); got != "a,b" {
		t.Fatalf("inputs %s (initializers must not be listed)", got)
	}
	out, err := s.Run(map[string]*ort.Tensor{
		"a": ort.NewTensor([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		"b": ort.NewTensor([]int64{2, 3}, []float32{10, 20, 30, 40, 50, 60}),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{22, 44, 66, 88, 110, 132}
	got := out["y"].Float32()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("y = %v, want %v", got, want)
		}
	}
}

func TestRunErrorsAreReportedNotCrashed(t *testing.T) {
	orttest.Init(t)
	s, err := ort.NewSession(addMulModel(t), ort.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Run(map[string]*ort.Tensor{"a": ort.NewTensor([]int64{2, 3}, make([]float32, 6))})
	if err == nil || !strings.Contains(err.Error(), `missing input "b"`) {
		t.Fatalf("err = %v", err)
	}
	_, err = s.Run(map[string]*ort.Tensor{
		"a": ort.NewTensor([]int64{3, 2}, make([]float32, 6)),
		"b": ort.NewTensor([]int64{3, 2}, make([]float32, 6)),
	})
	if err == nil {
		t.Fatal("a wrongly shaped input ran")
	}
	if _, err := ort.NewSession([]byte("not onnx"), ort.SessionOptions{}); err == nil {
		t.Fatal("garbage accepted as a model")
	}
}

func TestCUDAOnAMachineWithoutItSaysWhy(t *testing.T) {
	orttest.Init(t)
	err := ort.CUDAStatus()
	if err == nil {
		t.Skip("this machine can use CUDA; the failure message is not exercised")
	}
	msg := err.Error()
	if !strings.Contains(msg, "setup --ep cuda") && !strings.Contains(msg, "GPU") && !strings.Contains(msg, "lacks") {
		t.Fatalf("unhelpful CUDA error: %v", msg)
	}
	if _, err := ort.NewSession(addMulModel(t), ort.SessionOptions{EP: "cuda"}); err == nil {
		t.Fatal("--ep cuda accepted on a machine that cannot run it")
	}
}
