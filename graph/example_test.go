package graph_test

import (
	"fmt"

	"github.com/netssm/netssm/graph"
)

// A linear layer with a squared-error loss, its gradients, and the ONNX
// model's interface.
func Example() {
	g := graph.New("linear", graph.WithFloat(graph.Float64))
	x := g.Input("x", g.Float(), 8, 4)
	target := g.Input("target", g.Float(), 8, 2)
	exit := g.Scope("head")
	w := g.Param("weight", 4, 2)
	b := g.Param("bias", 2)
	exit()
	pred := x.MatMul(w).Add(b) // (8, 2); the bias broadcasts over rows
	loss := graph.ReduceMean(graph.Square(pred.Sub(target)))
	grads, err := graph.Gradients(loss, g.Params())
	if err != nil {
		fmt.Println(err)
		return
	}
	g.Output("loss", graph.Reshape(loss, 1))
	for i, p := range g.Params() {
		g.Output("grad."+p.Name(), grads[i])
	}
	model, err := g.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, in := range model.Graph.Input {
		fmt.Println("input ", in.GetName())
	}
	for i, out := range g.Outputs() {
		fmt.Println("output", model.Graph.Output[i].GetName(), out.Shape())
	}
	// Output:
	// input  x
	// input  target
	// input  head.weight
	// input  head.bias
	// output loss (1)
	// output grad.head.weight (4, 2)
	// output grad.head.bias (2)
}

// Ops never return errors: a shape error is recorded on the graph, later ops
// run on placeholders, and Build reports the first error.
func Example_shapeError() {
	g := graph.New("bad")
	a := g.Input("a", graph.Float32, 2, 3)
	b := g.Input("b", graph.Float32, 4, 5)
	y := graph.Tanh(graph.MatMul(a, b))
	g.Output("y", y)
	_, err := g.Build()
	fmt.Println(err)
	// Output:
	// graph "bad": MatMul: inner dimensions differ: (2, 3) · (4, 5) (a:float32(2, 3), b:float32(4, 5))
}
