package onnxpb_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/netssm/netssm/onnxpb"
)

// The copied schema is the one netssm writes: IR version 8.
func TestSchemaIsIRVersion8(t *testing.T) {
	if v := onnxpb.Version_IR_VERSION; v != 8 {
		t.Fatalf("schema IR version %d, want 8", v)
	}
}

func TestModelRoundTripsThroughProtobuf(t *testing.T) {
	m := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{
			Name: proto.String("g"),
			Node: []*onnxpb.NodeProto{{OpType: proto.String("Neg"), Input: []string{"x"}, Output: []string{"y"}}},
			Initializer: []*onnxpb.TensorProto{{
				Name: proto.String("w"), DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
				Dims: []int64{2}, RawData: []byte{0, 0, 128, 63, 0, 0, 0, 64},
			}},
		},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back onnxpb.ModelProto
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, &back) {
		t.Fatalf("round trip changed the model:\n%v\n%v", m, &back)
	}
}
