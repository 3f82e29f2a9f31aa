package graph_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/onnxpb"
	"github.com/netssm/netssm/ort"
	"github.com/netssm/netssm/ort/orttest"
)

func build(t *testing.T, g *graph.Graph, opts ...graph.BuildOption) *onnxpb.ModelProto {
	t.Helper()
	m, err := g.Build(opts...)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return m
}

func TestModelIsOpset17IRVersion8(t *testing.T) {
	g := graph.New("header")
	g.Output("y", graph.Neg(g.Input("x", graph.Float32, 2)))
	m := build(t, g)
	if m.GetIrVersion() != 8 {
		t.Errorf("IR version %d, want 8", m.GetIrVersion())
	}
	if len(m.OpsetImport) != 1 || m.OpsetImport[0].GetDomain() != "" || m.OpsetImport[0].GetVersion() != 17 {
		t.Errorf("opset imports %v, want the default domain at 17", m.OpsetImport)
	}
}

func TestEqualConstantsAreStoredOnce(t *testing.T) {
	g := graph.New("dedup", graph.WithFloat(graph.Float64))
	x := g.Input("x", graph.Float64, 3)
	y := x.MulScalar(2).AddScalar(2)                 // the scalar 2.0 twice
	y = graph.Add(y, g.Const([]float64{1, 2, 3}, 3)) // [1 2 3]
	y = graph.Mul(y, g.Const([]float64{1, 2, 3}, 3)) // [1 2 3] again
	y = graph.Add(y, g.Const([]float64{1, 2, 4}, 3)) // another value
	g.Output("y", graph.Reshape(y, 3, 1))            // the shape (3, 1)
	m := build(t, g)
	var names []string
	for _, init := range m.Graph.Initializer {
		names = append(names, init.GetName())
	}
	if len(names) != 4 {
		t.Errorf("initializers %v, want 4: 2.0, [1 2 3], [1 2 4], shape (3, 1)", names)
	}
	a, b := g.Const([]float64{1, 2, 3}, 3), g.Const([]float64{1, 2, 3}, 3)
	if a != b {
		t.Errorf("two equal constants are distinct tensors %s and %s", a, b)
	}
	if c := g.Const([]float64{1, 2, 3}, 3, 1); c == a {
		t.Errorf("constants of different shapes share %s", c)
	}
	if c := g.Const([]int64{1, 2, 3}, 3); c == a {
		t.Errorf("constants of different dtypes share %s", c)
	}
	if z1, z2 := g.Zeros(graph.Float64, 2, 3), g.Zeros(graph.Float64, 2, 3); z1 != z2 {
		t.Errorf("two Zeros(2, 3) are distinct tensors %s and %s", z1, z2)
	}
}

func TestNodesAreTopologicallySortedAndDeadNodesPruned(t *testing.T) {
	g := graph.New("topo", graph.WithFloat(graph.Float64))
	x := g.Input("x", graph.Float64, 4, 4)
	w := g.Param("w", 4, 4)
	h := graph.Tanh(x.MatMul(w))
	dead := graph.Exp(h) // not needed by any output
	_ = dead
	loss := graph.ReduceSum(graph.Square(h))
	grads, err := graph.Gradients(loss, []*graph.Tensor{w})
	if err != nil {
		t.Fatal(err)
	}
	g.Output("loss", graph.Reshape(loss, 1))
	g.Output("grad", grads[0])
	m := build(t, g)
	known := map[string]bool{"": true}
	for _, in := range m.Graph.Input {
		known[in.GetName()] = true
	}
	for _, init := range m.Graph.Initializer {
		known[init.GetName()] = true
	}
	for _, n := range m.Graph.Node {
		for _, in := range n.Input {
			if !known[in] {
				t.Errorf("node %s reads %q before it is produced", n.GetName(), in)
			}
		}
		for _, o := range n.Output {
			known[o] = true
		}
		if n.GetOpType() == "Exp" {
			t.Errorf("dead node %s was exported", n.GetName())
		}
	}
	for _, o := range m.Graph.Output {
		if !known[o.GetName()] {
			t.Errorf("output %q is never produced", o.GetName())
		}
	}
}

func TestScopedNamesSayWhereAParameterLives(t *testing.T) {
	g := graph.New("scopes")
	x := g.Input("tokens", graph.Float32, 2, 8)
	for i := range 2 {
		exit := g.Scope("layers." + string(rune('0'+i)))
		inner := g.Scope("mixer")
		w := g.Param("in_proj.weight", 8, 8)
		x = x.MatMul(w)
		inner()
		exit()
	}
	g.Output("y", x)
	var names []string
	for _, p := range g.Params() {
		names = append(names, p.Name())
	}
	want := []string{"layers.0.mixer.in_proj.weight", "layers.1.mixer.in_proj.weight"}
	if !slices.Equal(names, want) {
		t.Errorf("parameter names %v, want %v", names, want)
	}
	m := build(t, g)
	for _, n := range m.Graph.Node {
		if n.GetOpType() == "MatMul" && !strings.HasPrefix(n.GetName(), "layers.") {
			t.Errorf("node %s is not named under its scope", n.GetName())
		}
	}
}

func TestShapeErrorNamesTheOpAndShapesAndNeverPanics(t *testing.T) {
	g := graph.New("bad")
	a := g.Input("a", graph.Float32, 2, 3)
	b := g.Input("b", graph.Float32, 4, 5)
	c := graph.MatMul(a, b)           // fails: 3 ≠ 4
	d := graph.Add(c, c).MulScalar(2) // runs on placeholders
	graph.Reshape(d, 7, 7)            // would fail too; the first error wins
	g.Output("d", d)
	_, err := g.Build()
	if err == nil {
		t.Fatal("Build succeeded on a graph with a shape error")
	}
	for _, want := range []string{"MatMul", "(2, 3)", "(4, 5)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, gerr := graph.Gradients(graph.ReduceSum(d), []*graph.Tensor{a}); gerr == nil {
		t.Error("Gradients succeeded on a failed graph")
	}
}

func TestGradientThroughAnOpWithoutRuleNamesTheOp(t *testing.T) {
	g := graph.New("norule", graph.WithFloat(graph.Float64))
	x := g.Input("x", graph.Float64, 3)
	loss := graph.ReduceSum(graph.Mul(graph.Sign(x), x))
	_, err := graph.Gradients(loss, []*graph.Tensor{x})
	if err == nil || !strings.Contains(err.Error(), "Sign") {
		t.Fatalf("error %v does not name the op Sign", err)
	}
}

func TestDuplicateNamesAreRefused(t *testing.T) {
	g := graph.New("dup")
	g.Param("w", 2)
	g.Param("w", 2)
	if g.Err() == nil || !strings.Contains(g.Err().Error(), `"w"`) {
		t.Fatalf("second Param(w) gave %v", g.Err())
	}
}

func TestFloatTypeIsABuildParameter(t *testing.T) {
	for _, dt := range []graph.DType{graph.Float32, graph.Float64} {
		g := graph.New("float", graph.WithFloat(dt))
		w := g.Param("w", 2, 2)
		y := graph.Silu(w.MulScalar(0.5)).Add(g.Scalar(1))
		if w.DType() != dt || y.DType() != dt {
			t.Errorf("WithFloat(%v): param %v, result %v", dt, w.DType(), y.DType())
		}
	}
	if g := graph.New("int", graph.WithFloat(graph.Int64)); g.Err() == nil {
		t.Error("WithFloat(Int64) was accepted")
	}
}

func TestStopGradientBlocksTheFlow(t *testing.T) {
	g := graph.New("stop", graph.WithFloat(graph.Float64))
	x := g.Input("x", graph.Float64, 3)
	loss := graph.ReduceSum(graph.Mul(x, graph.StopGradient(x))) // d/dx = x, not 2x
	grads, err := graph.Gradients(loss, []*graph.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	g.Output("grad", grads[0])
	out := orttest.Run(t, orttest.Session(t, g), map[string]*ort.Tensor{"x": tensor64(x, []float64{1, -2, 3})})
	if got := out["grad"].Float64(); !slices.Equal(got, []float64{1, -2, 3}) {
		t.Errorf("gradient %v, want x = [1 -2 3]", got)
	}
}

func TestUnusedTensorGetsZeroGradient(t *testing.T) {
	g := graph.New("unused", graph.WithFloat(graph.Float64))
	x := g.Input("x", graph.Float64, 2)
	u := g.Param("unused", 2, 3)
	grads, err := graph.Gradients(graph.ReduceSum(graph.Exp(x)), []*graph.Tensor{u})
	if err != nil {
		t.Fatal(err)
	}
	g.Output("grad", grads[0])
	out := orttest.Run(t, orttest.Session(t, g), map[string]*ort.Tensor{"x": tensor64(x, []float64{1, 2}), "unused": tensor64(u, make([]float64, 6))})
	if got := out["grad"]; !slices.Equal(got.Float64(), make([]float64, 6)) || len(got.Shape) != 2 {
		t.Errorf("gradient of an unused parameter: %v %v, want zeros (2, 3)", got.Shape, got.Float64())
	}
}

func TestInitializersTurnParametersIntoConstants(t *testing.T) {
	g := graph.New("export", graph.WithFloat(graph.Float32))
	x := g.Input("x", graph.Float32, 1, 2)
	w := g.Param("w", 2, 2)
	b := g.Param("b", 2)
	g.Output("y", x.MatMul(w).Add(b))
	values := map[string]any{"w": []float32{1, 2, 3, 4}}
	m := build(t, g, graph.Initializers(values))
	var inputs []string
	for _, in := range m.Graph.Input {
		inputs = append(inputs, in.GetName())
	}
	if !slices.Equal(inputs, []string{"x", "b"}) {
		t.Errorf("inputs %v, want [x b] (w is an initializer)", inputs)
	}
	s := orttest.Session(t, g, graph.Initializers(values))
	out := orttest.Run(t, s, map[string]*ort.Tensor{
		"x": ort.NewTensor([]int64{1, 2}, []float32{1, 1}),
		"b": ort.NewTensor([]int64{2}, []float32{10, 20}),
	})
	if got := out["y"].Float32(); !slices.Equal(got, []float32{14, 26}) {
		t.Errorf("y = %v, want [14 26]", got)
	}
	if _, err := g.Build(graph.Initializers(map[string]any{"nope": []float32{1}})); err == nil {
		t.Error("a value for an unknown parameter was accepted")
	}
	if _, err := g.Build(graph.Initializers(map[string]any{"b": []float64{1, 2}})); err == nil {
		t.Error("a float64 value for a float32 parameter was accepted")
	}
}

func TestFailedBuildIsSavedForInspection(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(graph.DumpEnv, dir)
	g := graph.New("broken graph")
	x := g.Input("x", graph.Float32, 2, 3)
	g.Output("y", graph.Exp(x))
	graph.Transpose(x, 0, 0) // a bad perm
	if _, err := g.Build(); err == nil {
		t.Fatal("Build succeeded")
	}
	b, err := os.ReadFile(filepath.Join(dir, "broken_graph.build-failed.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatalf("the saved model does not parse: %v", err)
	}
	if len(m.Graph.Node) != 1 || m.Graph.Node[0].GetOpType() != "Exp" || !strings.Contains(m.Graph.GetDocString(), "Transpose") {
		t.Errorf("saved graph has nodes %v and doc %q", m.Graph.Node, m.Graph.GetDocString())
	}
}

func TestInvalidOpsFailTheBuildNamingTheOp(t *testing.T) {
	cases := []struct {
		op    string
		build func(g *graph.Graph, x *graph.Tensor)
	}{
		{"Add", func(g *graph.Graph, x *graph.Tensor) { graph.Add(x, g.Input("y", graph.Float32, 4)) }},
		{"Add", func(g *graph.Graph, x *graph.Tensor) { graph.Add(x, g.Input("y", graph.Float64, 3)) }},
		{"Reshape", func(g *graph.Graph, x *graph.Tensor) { graph.Reshape(x, 5, -1) }},
		{"Transpose", func(g *graph.Graph, x *graph.Tensor) { graph.Transpose(x, 1, 1) }},
		{"Squeeze", func(g *graph.Graph, x *graph.Tensor) { graph.Squeeze(x, 0) }},
		{"Unsqueeze", func(g *graph.Graph, x *graph.Tensor) { graph.Unsqueeze(x, 5) }},
		{"Slice", func(g *graph.Graph, x *graph.Tensor) { graph.Slice(x, 2, 0, 1) }},
		{"Concat", func(g *graph.Graph, x *graph.Tensor) { graph.Concat(0, x, g.Input("y", graph.Float32, 2, 4)) }},
		{"Split", func(g *graph.Graph, x *graph.Tensor) { graph.Split(x, 1, 1, 1) }},
		{"Pad", func(g *graph.Graph, x *graph.Tensor) { graph.Pad(x, []int{1}, []int{1}, 0) }},
		{"Expand", func(g *graph.Graph, x *graph.Tensor) { graph.Expand(x, 4, 4) }},
		{"ReduceSum", func(g *graph.Graph, x *graph.Tensor) { graph.ReduceSum(x, 3) }},
		{"CumSum", func(g *graph.Graph, x *graph.Tensor) { graph.CumSum(x, -3, false, false) }},
		{"Gather", func(g *graph.Graph, x *graph.Tensor) { graph.Gather(x, x, 0) }},
		{"OneHot", func(g *graph.Graph, x *graph.Tensor) { graph.OneHot(x, 4, graph.Float32) }},
		{"Where", func(g *graph.Graph, x *graph.Tensor) { graph.Where(x, x, x) }},
		{"Clip", func(g *graph.Graph, x *graph.Tensor) { graph.Clip(x, 1, -1) }},
		{"MatMul", func(g *graph.Graph, x *graph.Tensor) { graph.MatMul(x, x) }},
		{"Softmax", func(g *graph.Graph, x *graph.Tensor) { graph.Softmax(x, 2) }},
		{"Exp", func(g *graph.Graph, x *graph.Tensor) { graph.Exp(g.Input("ids", graph.Int64, 2)) }},
		{"Const", func(g *graph.Graph, x *graph.Tensor) { g.Const([]float32{1, 2, 3}, 2, 2) }},
	}
	for _, c := range cases {
		g := graph.New("invalid")
		x := g.Input("x", graph.Float32, 2, 3)
		c.build(g, x)
		g.Output("x_out", x)
		_, err := g.Build()
		if err == nil || !strings.Contains(err.Error(), c.op) {
			t.Errorf("%s: Build error %v does not name the op", c.op, err)
		}
	}
}

func TestOneHotOfAnOutOfRangeIndexIsZeros(t *testing.T) {
	g := graph.New("onehot")
	ids := g.Input("ids", graph.Int64, 4)
	g.Output("hot", graph.OneHot(ids, 3, graph.Float32))
	out := orttest.Run(t, orttest.Session(t, g), map[string]*ort.Tensor{"ids": ort.NewTensor([]int64{4}, []int64{2, -1, 0, 3})})
	want := []float32{0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0}
	if got := out["hot"].Float32(); !slices.Equal(got, want) {
		t.Errorf("one-hot %v, want %v", got, want)
	}
}

func TestATensorCanBeOutputUnderSeveralNames(t *testing.T) {
	g := graph.New("aliases")
	x := g.Input("x", graph.Float32, 2)
	y := graph.Neg(x)
	g.Output("y", y)
	g.Output("y_again", y)
	g.Output("x_echo", x)
	g.Output("two", g.Const([]float32{2}, 1))
	out := orttest.Run(t, orttest.Session(t, g), map[string]*ort.Tensor{"x": ort.NewTensor([]int64{2}, []float32{1, -3})})
	for name, want := range map[string][]float32{"y": {-1, 3}, "y_again": {-1, 3}, "x_echo": {1, -3}, "two": {2}} {
		if got := out[name].Float32(); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	g.Output("y", x)
	if g.Err() == nil {
		t.Error("a second output named y was accepted")
	}
}

func TestScatterAddSumsRepeatedIndices(t *testing.T) {
	g := graph.New("scatter")
	idx := g.Input("idx", graph.Int64, 5, 1)
	upd := g.Input("upd", graph.Float32, 5)
	g.Output("acc", graph.ScatterAdd(g.Full(graph.Float32, 1, 4), idx, upd))
	out := orttest.Run(t, orttest.Session(t, g), map[string]*ort.Tensor{
		"idx": ort.NewTensor([]int64{5, 1}, []int64{3, 0, 3, 2, 3}),
		"upd": ort.NewTensor([]int64{5}, []float32{1, 2, 4, 8, 16}),
	})
	want := []float32{3, 1, 9, 22}
	if got := out["acc"].Float32(); !slices.Equal(got, want) {
		t.Errorf("scatter-add %v, want %v", got, want)
	}
	bad := graph.New("scatter-bad")
	graph.ScatterAdd(bad.Zeros(graph.Float32, 4), bad.Input("i", graph.Int64, 5, 1), bad.Input("u", graph.Float32, 4))
	if bad.Err() == nil || !strings.Contains(bad.Err().Error(), "ScatterAdd") {
		t.Errorf("updates of the wrong shape: error %v", bad.Err())
	}
}
