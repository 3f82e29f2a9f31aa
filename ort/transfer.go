package ort

import (
	"fmt"

	ortgo "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"

	"github.com/netssm/netssm/onnxpb"
)

// Copies between host values and DeviceTensors go through a graph of n
// Identity nodes on the session's own provider, run with I/O binding: ONNX
// Runtime then moves the bytes itself (a device-to-host or host-to-device
// copy under CUDA), which needs nothing from the C API beyond binding.

// identityModel is a graph of n float32 Identity nodes, x_i → y_i, of any shape.
func identityModel(n int) ([]byte, error) {
	s := proto.String
	float := func(name string) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: s(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT))}}}}
	}
	g := &onnxpb.GraphProto{Name: s("netssm_copy")}
	for i := range n {
		x, y := fmt.Sprintf("x%d", i), fmt.Sprintf("y%d", i)
		g.Node = append(g.Node, &onnxpb.NodeProto{Input: []string{x}, Output: []string{y}, OpType: s("Identity"), Name: s("copy" + x)})
		g.Input = append(g.Input, float(x))
		g.Output = append(g.Output, float(y))
	}
	m := &onnxpb.ModelProto{IrVersion: proto.Int64(8), ProducerName: s("netssm"), Graph: g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: s(""), Version: proto.Int64(17)}}}
	return proto.Marshal(m)
}

// copier returns the session's cached identity graph for n tensors.
func (s *Session) copier(n int) (*Session, error) {
	if c, ok := s.copiers[n]; ok {
		return c, nil
	}
	model, err := identityModel(n)
	if err != nil {
		return nil, err
	}
	c, err := NewSession(model, SessionOptions{EP: s.ep, Device: s.device, Threads: 1})
	if err != nil {
		return nil, fmt.Errorf("the copy graph: %w", err)
	}
	if s.copiers == nil {
		s.copiers = map[int]*Session{}
	}
	s.copiers[n] = c
	return c, nil
}

// Download copies device tensors into host float32 tensors of the same sizes.
func (s *Session) Download(src []*DeviceTensor, dst []*ortgo.Tensor[float32]) error {
	return s.transfer(len(src), len(dst), func(b *Binding, i int, x, y string) error {
		if int64(src[i].Len()) != dst[i].GetShape().FlattenedSize() {
			return fmt.Errorf("download %d: %v into %v", i, src[i].Shape, dst[i].GetShape())
		}
		if err := b.InputDevice(x, src[i]); err != nil {
			return err
		}
		return b.Output(y, dst[i])
	})
}

// Upload copies host float32 tensors into device tensors of the same sizes.
func (s *Session) Upload(src []*ortgo.Tensor[float32], dst []*DeviceTensor) error {
	return s.transfer(len(src), len(dst), func(b *Binding, i int, x, y string) error {
		if int64(dst[i].Len()) != src[i].GetShape().FlattenedSize() {
			return fmt.Errorf("upload %d: %v into %v", i, src[i].GetShape(), dst[i].Shape)
		}
		if err := b.Input(x, src[i]); err != nil {
			return err
		}
		return b.OutputDevice(y, dst[i])
	})
}

func (s *Session) transfer(nsrc, ndst int, bind func(b *Binding, i int, x, y string) error) error {
	if nsrc != ndst {
		return fmt.Errorf("copy of %d tensors into %d", nsrc, ndst)
	}
	if nsrc == 0 {
		return nil
	}
	c, err := s.copier(nsrc)
	if err != nil {
		return err
	}
	b, err := c.NewBinding()
	if err != nil {
		return err
	}
	defer b.Close()
	for i := range nsrc {
		if err := bind(b, i, fmt.Sprintf("x%d", i), fmt.Sprintf("y%d", i)); err != nil {
			return err
		}
	}
	return b.Run()
}
