package graph

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Graph is a computation graph under construction. It is not safe for
// concurrent use; build one graph per goroutine.
type Graph struct {
	name  string
	float DType

	nodes   []*node
	inputs  []*Tensor // graph inputs and parameters, in declaration order
	params  []*Tensor // the parameters among them
	outputs []*Tensor // in declaration order; each tensor's name is its output name
	isOut   map[*Tensor]bool
	consts  []*Tensor
	byKey   map[string]*Tensor // constant de-duplication
	names   map[string]bool    // every value and node name in use
	scope   []string
	counter int
	err     error // the first build error; later ops are no-ops
}

// Option configures a new graph.
type Option func(*Graph)

// WithFloat sets the float type that Param, Scalar and the float constants
// use (Float32 by default): the same model code then builds in Float64 for
// exact checks and in Float32 for training.
func WithFloat(d DType) Option { return func(g *Graph) { g.float = d } }

// New starts an empty graph.
func New(name string, opts ...Option) *Graph {
	g := &Graph{name: name, float: Float32, byKey: map[string]*Tensor{}, names: map[string]bool{}, isOut: map[*Tensor]bool{}}
	for _, o := range opts {
		o(g)
	}
	if !g.float.IsFloat() {
		g.err = fmt.Errorf("graph %q: WithFloat(%v): not a float type", name, g.float)
		g.float = Float32
	}
	return g
}

// Name is the graph's name.
func (g *Graph) Name() string { return g.name }

// Float is the graph's float type (see WithFloat).
func (g *Graph) Float() DType { return g.float }

// Err is the first error met while building, or nil. Build and Gradients
// return it too; after an error, ops return placeholder tensors.
func (g *Graph) Err() error { return g.err }

// Params lists the parameters in declaration order.
func (g *Graph) Params() []*Tensor { return append([]*Tensor(nil), g.params...) }

// Inputs lists the graph inputs (parameters included) in declaration order.
func (g *Graph) Inputs() []*Tensor { return append([]*Tensor(nil), g.inputs...) }

// Outputs lists the graph outputs in declaration order.
func (g *Graph) Outputs() []*Tensor { return append([]*Tensor(nil), g.outputs...) }

// NumNodes is the number of nodes created so far (constants excluded).
func (g *Graph) NumNodes() int { return len(g.nodes) }

// Tensor is a value of the graph: an input, a parameter, a constant or the
// output of a node. Its dtype and shape are known when it is created.
type Tensor struct {
	g      *Graph
	name   string
	dtype  DType
	shape  Shape
	kind   kind
	node   *node // the producer, for node outputs
	index  int   // which output of node
	data   []byte
	broken bool // a placeholder returned after a build error
}

type kind uint8

const (
	kindNode kind = iota
	kindInput
	kindParam
	kindConst
)

// Graph is the graph the tensor belongs to.
func (t *Tensor) Graph() *Graph { return t.g }

// Name is the ONNX value name (for inputs, parameters and outputs, the
// scoped name they were declared with).
func (t *Tensor) Name() string { return t.name }

// DType is the element type.
func (t *Tensor) DType() DType { return t.dtype }

// Shape is a copy of the static shape.
func (t *Tensor) Shape() Shape { return t.shape.Clone() }

// Rank is the number of axes.
func (t *Tensor) Rank() int { return len(t.shape) }

// Dim is the size of an axis; negative axes count from the end.
func (t *Tensor) Dim(axis int) int {
	if axis < 0 {
		axis += len(t.shape)
	}
	if axis < 0 || axis >= len(t.shape) {
		return 0
	}
	return t.shape[axis]
}

// IsParam reports whether the tensor was declared with Param.
func (t *Tensor) IsParam() bool { return t.kind == kindParam }

func (t *Tensor) String() string {
	return fmt.Sprintf("%s:%v%v", t.name, t.dtype, t.shape)
}

// node is one ONNX node: an op type, its inputs and outputs, its attributes.
type node struct {
	op      string
	name    string
	inputs  []*Tensor
	outputs []*Tensor
	attrs   []attribute
	// args are Go copies of the constant inputs that opset 17 passes as
	// tensors (axes, starts, split sizes…), kept for the gradient rules.
	args   map[string]any
	noGrad bool // StopGradient
}

// attribute is one ONNX attribute as a Go value: int, float64, string,
// []int, or DType (written as an int).
type attribute struct {
	name string
	val  any
}

func (n *node) attr(name string) any {
	for _, a := range n.attrs {
		if a.name == name {
			return a.val
		}
	}
	if v, ok := n.args[name]; ok {
		return v
	}
	failf("%s: node %s has no attribute %q", n.op, n.name, name)
	return nil
}

func (n *node) intAttr(name string) int    { return n.attr(name).(int) }
func (n *node) intsAttr(name string) []int { return n.attr(name).([]int) }

// ---- errors ----

// buildError is the panic value of a failed build step. It never leaves the
// package: exported functions recover it and record it on the graph.
type buildError struct{ err error }

// errSkipped is raised by ops called after the graph already failed.
var errSkipped = errors.New("skipped after an earlier build error")

func failf(format string, args ...any) {
	panic(buildError{fmt.Errorf(format, args...)})
}

// guard recovers a build panic in an exported op: it records the first error
// on the graph and makes *out a placeholder shaped like anchor, so that the
// caller's code runs on and Build reports the error.
func guard(anchor *Tensor, out **Tensor) {
	r := recover()
	if r == nil {
		return
	}
	be, ok := r.(buildError)
	if !ok || anchor == nil || anchor.g == nil {
		panic(r)
	}
	anchor.g.fail(be.err)
	*out = anchor.g.placeholder(anchor)
}

// guardAll is guard for ops with several outputs; n is how many placeholders
// to return.
func guardAll(anchor *Tensor, out *[]*Tensor, n int) {
	r := recover()
	if r == nil {
		return
	}
	be, ok := r.(buildError)
	if !ok || anchor == nil || anchor.g == nil {
		panic(r)
	}
	anchor.g.fail(be.err)
	*out = make([]*Tensor, n)
	for i := range *out {
		(*out)[i] = anchor.g.placeholder(anchor)
	}
}

func (g *Graph) fail(err error) {
	if g.err == nil && !errors.Is(err, errSkipped) {
		g.err = fmt.Errorf("graph %q: %w", g.name, err)
	}
}

func (g *Graph) placeholder(like *Tensor) *Tensor {
	return &Tensor{g: g, name: "<broken>", dtype: like.dtype, shape: like.shape.Clone(), broken: true}
}

// sameGraph returns the graph of ts, or panics if they come from different
// graphs or one is nil.
func sameGraph(op string, ts ...*Tensor) *Graph {
	var g *Graph
	for i, t := range ts {
		if t == nil {
			failf("%s: input %d is nil", op, i)
		}
		if g == nil {
			g = t.g
		} else if t.g != g {
			failf("%s: inputs %s and %s belong to different graphs", op, ts[0], t)
		}
	}
	if g.err != nil {
		panic(buildError{errSkipped})
	}
	return g
}

// ---- names and scopes ----

// Scope enters a name scope; the returned function leaves it. Names given to
// Input, Param and Output, and the names of nodes, are prefixed with the
// scopes joined by dots, so that a parameter's name says where it lives:
//
//	exit := g.Scope("layers.3")
//	w := g.Param("mixer.in_proj.weight", 64, 32) // "layers.3.mixer.in_proj.weight"
//	exit()
//
// or, for a whole function, defer g.Scope("mixer")().
func (g *Graph) Scope(name string) (exit func()) {
	depth := len(g.scope)
	g.scope = append(g.scope, name)
	return func() { g.scope = g.scope[:depth] }
}

// ScopedName is name under the current scope.
func (g *Graph) ScopedName(name string) string {
	if len(g.scope) == 0 {
		return name
	}
	return strings.Join(g.scope, ".") + "." + name
}

// claim reserves a user-chosen name or panics if it is taken.
func (g *Graph) claim(what, name string) {
	if name == "" {
		failf("%s: empty name", what)
	}
	if g.names[name] {
		failf("%s: name %q is already used in the graph", what, name)
	}
	g.names[name] = true
}

// fresh makes a unique node name from the scope and op type.
func (g *Graph) fresh(op string) string {
	prefix := strings.Join(g.scope, ".")
	if prefix != "" {
		prefix += "/"
	}
	for {
		g.counter++
		name := prefix + op + "_" + strconv.Itoa(g.counter)
		if !g.names[name] {
			g.names[name] = true
			return name
		}
	}
}

// ---- inputs, parameters, outputs ----

// Input declares a graph input that the caller feeds at every Run.
func (g *Graph) Input(name string, dtype DType, shape ...int) (out *Tensor) {
	return g.declare("Input", kindInput, g.ScopedName(name), dtype, shape)
}

// Param declares a trainable parameter in the graph's float type. Build
// makes it a graph input (training feeds it) unless Initializers gives it a
// value (exported inference graphs).
func (g *Graph) Param(name string, shape ...int) *Tensor {
	return g.declare("Param", kindParam, g.ScopedName(name), g.float, shape)
}

func (g *Graph) declare(what string, k kind, name string, dtype DType, shape Shape) (out *Tensor) {
	anchor := &Tensor{g: g, dtype: dtype, shape: shape}
	defer guard(anchor, &out)
	if g.err != nil {
		panic(buildError{errSkipped})
	}
	g.claim(what, name)
	if dtype.size() == 0 {
		failf("%s %q: unsupported dtype %v", what, name, dtype)
	}
	for _, d := range shape {
		if d < 0 {
			failf("%s %q: negative dimension in shape %v", what, name, shape)
		}
	}
	t := &Tensor{g: g, name: name, dtype: dtype, shape: shape.Clone(), kind: k}
	g.inputs = append(g.inputs, t)
	if k == kindParam {
		g.params = append(g.params, t)
	}
	return t
}

// Output declares t as a graph output named name (under the current scope).
// A tensor can be output under several names.
func (g *Graph) Output(name string, t *Tensor) {
	defer func() {
		if r := recover(); r != nil {
			be, ok := r.(buildError)
			if !ok {
				panic(r)
			}
			g.fail(be.err)
		}
	}()
	if g.err != nil {
		return
	}
	if t == nil {
		failf("Output %q: tensor is nil", name)
	}
	if t.g != g {
		failf("Output %q: tensor %s belongs to another graph", name, t)
	}
	name = g.ScopedName(name)
	if t.kind == kindNode && !g.isOut[t] {
		// Rename the node's output: no copy at run time.
		g.claim("Output", name)
		t.name = name
	} else {
		// Inputs, constants and tensors already output go through an Identity.
		g.claim("Output", name)
		t = g.add1("Identity", []*Tensor{t}, nil, nil, t.dtype, t.shape)
		t.name = name
	}
	g.outputs = append(g.outputs, t)
	g.isOut[t] = true
}

// ---- nodes ----

type outSpec struct {
	dtype DType
	shape Shape
}

// addNode appends a node whose output types were inferred by the caller.
func (g *Graph) addNode(op string, inputs []*Tensor, attrs []attribute, args map[string]any, outs []outSpec) []*Tensor {
	for i, in := range inputs {
		if in != nil && in.broken {
			panic(buildError{errSkipped})
		}
		if in != nil && in.g != g {
			failf("%s: input %d (%s) belongs to another graph", op, i, in)
		}
	}
	n := &node{op: op, name: g.fresh(op), inputs: inputs, attrs: attrs, args: args}
	for i, o := range outs {
		name := n.name
		if i > 0 {
			name = fmt.Sprintf("%s:%d", n.name, i)
			g.names[name] = true
		}
		n.outputs = append(n.outputs, &Tensor{g: g, name: name, dtype: o.dtype, shape: o.shape, kind: kindNode, node: n, index: i})
	}
	g.nodes = append(g.nodes, n)
	return n.outputs
}

// add1 is addNode for the usual single-output node.
func (g *Graph) add1(op string, inputs []*Tensor, attrs []attribute, args map[string]any, dtype DType, shape Shape) *Tensor {
	return g.addNode(op, inputs, attrs, args, []outSpec{{dtype, shape}})[0]
}
