package graph

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/netssm/netssm/onnxpb"
)

// ONNX versions of the models the builder writes.
const (
	Opset     = 17
	IRVersion = 8
)

// DumpEnv names the environment variable that, when set to a directory,
// makes a failing Build write what it has of the model there.
const DumpEnv = "NETSSM_DUMP_ONNX"

// BuildOption configures Build.
type BuildOption func(*buildConfig)

type buildConfig struct {
	values    map[string]any
	valueInfo bool
}

// WithValueInfo records the inferred dtype and shape of every intermediate
// value in the model's value_info, for viewers (Netron) and for checking the
// builder's shape inference against ONNX's own (onnx.checker, full check).
func WithValueInfo() BuildOption {
	return func(c *buildConfig) { c.valueInfo = true }
}

// Initializers gives parameters values, keyed by their scoped names: those
// parameters become initializers of the model instead of inputs (exported
// inference graphs). A value is a []float32 or []float64 of the parameter's
// dtype and size. A name that is not a parameter is an error.
func Initializers(values map[string]any) BuildOption {
	return func(c *buildConfig) { c.values = values }
}

// Build emits the graph as an ONNX ModelProto (opset 17, IR version 8). Only
// the nodes that the outputs depend on are kept, in creation order, which is
// a topological order; every declared input (and parameter without a value)
// stays an input, so the feeds of a graph do not change with its outputs.
func (g *Graph) Build(opts ...BuildOption) (*onnxpb.ModelProto, error) {
	var c buildConfig
	for _, o := range opts {
		o(&c)
	}
	m, err := g.build(c)
	if err != nil {
		g.dumpFailed(err)
		return nil, err
	}
	return m, nil
}

// Serialize is Build followed by protobuf marshalling: the bytes that
// ort.NewSession takes and that .onnx files hold.
func (g *Graph) Serialize(opts ...BuildOption) ([]byte, error) {
	m, err := g.Build(opts...)
	if err != nil {
		return nil, err
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("graph %q: marshalling the model: %w", g.name, err)
	}
	return b, nil
}

func (g *Graph) build(c buildConfig) (m *onnxpb.ModelProto, err error) {
	if g.err != nil {
		return nil, g.err
	}
	defer func() {
		if r := recover(); r != nil {
			be, ok := r.(buildError)
			if !ok {
				panic(r)
			}
			m, err = nil, fmt.Errorf("graph %q: %w", g.name, be.err)
		}
	}()
	if len(g.outputs) == 0 {
		failf("Build: the graph has no outputs")
	}
	params := map[string]*Tensor{}
	for _, p := range g.params {
		params[p.name] = p
	}
	for name := range c.values {
		if params[name] == nil {
			failf("Build: initializer value for %q, which is not a parameter", name)
		}
	}
	keep := g.reachable()
	gp := &onnxpb.GraphProto{Name: proto.String(g.name)}
	for _, in := range g.inputs {
		if v, ok := c.values[in.name]; ok {
			gp.Initializer = append(gp.Initializer, initializer(in, v))
			continue
		}
		gp.Input = append(gp.Input, valueInfo(in))
	}
	for _, k := range g.consts {
		if keep[k] {
			gp.Initializer = append(gp.Initializer, tensorProto(k.name, k.dtype, k.shape, k.data))
		}
	}
	fused := false
	for _, n := range g.nodes {
		if !keep[n.outputs[0]] {
			continue
		}
		fused = fused || fusedOps[n.op]
		gp.Node = append(gp.Node, nodeProto(n))
		for _, o := range n.outputs {
			if c.valueInfo && !g.isOut[o] {
				gp.ValueInfo = append(gp.ValueInfo, valueInfo(o))
			}
		}
	}
	for _, o := range g.outputs {
		gp.Output = append(gp.Output, valueInfo(o))
	}
	m = model(gp)
	if fused {
		m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String(FusedDomain), Version: proto.Int64(FusedOpset)})
	}
	return m, nil
}

func model(gp *onnxpb.GraphProto) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(IRVersion),
		ProducerName: proto.String("netssm"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		Graph:        gp,
	}
}

// reachable marks the tensors (all outputs of a needed node, and the
// constants) that the graph outputs depend on.
func (g *Graph) reachable() map[*Tensor]bool {
	keep := map[*Tensor]bool{}
	stack := append([]*Tensor(nil), g.outputs...)
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if t == nil || keep[t] {
			continue
		}
		keep[t] = true
		if t.node != nil {
			for _, o := range t.node.outputs {
				keep[o] = true
			}
			stack = append(stack, t.node.inputs...)
		}
	}
	return keep
}

func nodeProto(n *node) *onnxpb.NodeProto {
	np := &onnxpb.NodeProto{Name: proto.String(n.name), OpType: proto.String(n.op)}
	if fusedOps[n.op] {
		np.Domain = proto.String(FusedDomain)
	}
	for _, in := range n.inputs {
		name := ""
		if in != nil {
			name = in.name
		}
		np.Input = append(np.Input, name)
	}
	for _, o := range n.outputs {
		np.Output = append(np.Output, o.name)
	}
	for _, a := range n.attrs {
		np.Attribute = append(np.Attribute, attributeProto(a))
	}
	return np
}

func attributeProto(a attribute) *onnxpb.AttributeProto {
	ap := &onnxpb.AttributeProto{Name: proto.String(a.name)}
	switch v := a.val.(type) {
	case int:
		ap.Type = onnxpb.AttributeProto_INT.Enum()
		ap.I = proto.Int64(int64(v))
	case DType:
		ap.Type = onnxpb.AttributeProto_INT.Enum()
		ap.I = proto.Int64(int64(v))
	case float64:
		ap.Type = onnxpb.AttributeProto_FLOAT.Enum()
		ap.F = proto.Float32(float32(v))
	case string:
		ap.Type = onnxpb.AttributeProto_STRING.Enum()
		ap.S = []byte(v)
	case []int:
		ap.Type = onnxpb.AttributeProto_INTS.Enum()
		ap.Ints = Shape(v).Int64s()
	default:
		failf("attribute %s: unsupported value %T", a.name, a.val)
	}
	return ap
}

func valueInfo(t *Tensor) *onnxpb.ValueInfoProto {
	dims := make([]*onnxpb.TensorShapeProto_Dimension, len(t.shape))
	for i, d := range t.shape {
		dims[i] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}}
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(t.name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(t.dtype)),
			Shape:    &onnxpb.TensorShapeProto{Dim: dims},
		}}},
	}
}

func tensorProto(name string, dtype DType, shape Shape, raw []byte) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{
		Name:     proto.String(name),
		DataType: proto.Int32(int32(dtype)),
		Dims:     shape.Int64s(),
		RawData:  raw,
	}
}

func initializer(p *Tensor, v any) *onnxpb.TensorProto {
	dtype, raw, n := encode(v)
	if dtype != p.dtype || n != p.shape.Size() {
		failf("Build: value of parameter %s is %d %v elements", p, n, dtype)
	}
	return tensorProto(p.name, dtype, p.shape, raw)
}

// dumpFailed writes what can be serialised of a graph whose build failed to
// $NETSSM_DUMP_ONNX/<name>.build-failed.onnx, with the error beside it.
func (g *Graph) dumpFailed(cause error) {
	dir := os.Getenv(DumpEnv)
	if dir == "" {
		return
	}
	gp := &onnxpb.GraphProto{Name: proto.String(g.name), DocString: proto.String(cause.Error())}
	for _, in := range g.inputs {
		gp.Input = append(gp.Input, valueInfo(in))
	}
	for _, k := range g.consts {
		gp.Initializer = append(gp.Initializer, tensorProto(k.name, k.dtype, k.shape, k.data))
	}
	for _, n := range g.nodes {
		if np, ok := safeNodeProto(n); ok {
			gp.Node = append(gp.Node, np)
		}
	}
	for _, o := range g.outputs {
		gp.Output = append(gp.Output, valueInfo(o))
	}
	b, err := proto.Marshal(model(gp))
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	base := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(g.name)+".build-failed")
	if err == nil {
		err = os.WriteFile(base+".onnx", b, 0o644)
	}
	if err == nil {
		err = os.WriteFile(base+".txt", []byte(cause.Error()+"\n"), 0o644)
	}
	if err != nil {
		slog.Warn("could not save the failed graph", "graph", g.name, "dir", dir, "err", err)
		return
	}
	slog.Info("saved the failed graph", "graph", g.name, "path", base+".onnx")
}

func safeNodeProto(n *node) (np *onnxpb.NodeProto, ok bool) {
	defer func() {
		if recover() != nil {
			np, ok = nil, false
		}
	}()
	return nodeProto(n), true
}
