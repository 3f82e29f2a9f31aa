package graph_test

import (
	"fmt"
	"testing"

	"github.com/netssm/netssm/graph"
)

// deepGraph builds a residual stack of (MatMul, Tanh, scale, Add) blocks with
// one parameter each, until it has at least nodes nodes.
func deepGraph(nodes int) *graph.Graph {
	g := graph.New("deep")
	h := g.Input("x", graph.Float32, 8, 64)
	for i := 0; g.NumNodes() < nodes; i++ {
		exit := g.Scope(fmt.Sprintf("layers.%d", i))
		w := g.Param("weight", 64, 64)
		h = h.Add(graph.Tanh(h.MatMul(w)).MulScalar(0.5))
		exit()
	}
	g.Output("y", h)
	return g
}

func TestDeepResidualGraphExportsEveryNode(t *testing.T) {
	g := deepGraph(2000)
	m, err := g.Build()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.Graph.Node); n < 2000 {
		t.Errorf("%d nodes exported, want at least 2000", n)
	}
}

// BenchmarkBuildAndSerialize20kNodes: go test -run '^$' -bench Build -benchmem ./graph
func BenchmarkBuildAndSerialize20kNodes(b *testing.B) {
	b.ReportAllocs()
	var size int
	for b.Loop() {
		g := deepGraph(20000)
		bytes, err := g.Serialize()
		if err != nil {
			b.Fatal(err)
		}
		size = len(bytes)
	}
	b.ReportMetric(float64(size), "model-bytes")
}

// BenchmarkGradients20kNodes adds the backward pass of a 20,000-node forward
// graph and serialises the whole.
func BenchmarkGradients20kNodes(b *testing.B) {
	b.ReportAllocs()
	var nodes int
	for b.Loop() {
		g := deepGraph(20000)
		y := g.Outputs()[0]
		grads, err := graph.Gradients(graph.ReduceSum(y), g.Params())
		if err != nil {
			b.Fatal(err)
		}
		for i, d := range grads {
			g.Output(fmt.Sprintf("grad.%d", i), d)
		}
		if _, err := g.Serialize(); err != nil {
			b.Fatal(err)
		}
		nodes = g.NumNodes()
	}
	b.ReportMetric(float64(nodes), "nodes")
}
