package model_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/ort/orttest"
)

func TestZZProbe(t *testing.T) {
	c := preset(t, "small")
	const B, L = 1, 2048
	g := graph.New("fwd_bwd", graph.WithFloat(graph.Float32))
	ids := g.Input("ids", graph.Int64, B, L)
	targets := g.Input("targets", graph.Int64, B, L)
	mask := g.Input("mask", graph.Float32, B, L)
	loss, _, _, params := model.TrainLoss(c)(g, ids, targets, mask)
	grads, _ := graph.Gradients(loss, params)
	g.Output("loss", graph.Reshape(loss, 1))
	for i, p := range params {
		g.Output("grad."+p.Name(), grads[i])
	}
	orttest.Init(t)
	bs, err := g.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	_, feeds, _ := fwdBwd(t, c, B, L)
	opts, _ := ortgo.NewSessionOptions()
	opts.SetIntraOpNumThreads(2)
	dir := t.TempDir()
	opts.EnableProfiling(filepath.Join(dir, "prof"))
	var inNames, outNames []string
	for _, in := range g.Inputs() {
		inNames = append(inNames, in.Name())
	}
	for _, o := range g.Outputs() {
		outNames = append(outNames, o.Name())
	}
	s, err := ortgo.NewDynamicAdvancedSessionWithONNXData(bs, inNames, outNames, opts)
	if err != nil {
		t.Fatal(err)
	}
	ins := make([]ortgo.Value, len(inNames))
	for i, n := range inNames {
		f := feeds[n]
		switch d := f.Data.(type) {
		case []float32:
			ins[i], _ = ortgo.NewTensor(ortgo.NewShape(f.Shape...), d)
		case []int64:
			ins[i], _ = ortgo.NewTensor(ortgo.NewShape(f.Shape...), d)
		}
	}
	for range 2 {
		outs := make([]ortgo.Value, len(outNames))
		if err := s.Run(ins, outs); err != nil {
			t.Fatal(err)
		}
	}
	s.Destroy()
	files, _ := filepath.Glob(filepath.Join(dir, "prof*"))
	raw, _ := os.ReadFile(files[0])
	var ev []struct {
		Cat  string `json:"cat"`
		Name string `json:"name"`
		Dur  int64  `json:"dur"`
		Args struct {
			OpName string `json:"op_name"`
			Shape  any    `json:"output_type_shape"`
		} `json:"args"`
	}
	json.Unmarshal(raw, &ev)
	byOp := map[string]int64{}
	type nd struct {
		name string
		dur  int64
		sh   any
	}
	var nodes []nd
	var total int64
	for _, e := range ev {
		if e.Cat == "Node" && e.Args.OpName != "" {
			byOp[e.Args.OpName] += e.Dur
			total += e.Dur
			nodes = append(nodes, nd{e.Name, e.Dur, e.Args.Shape})
		}
	}
	type kv struct {
		k string
		v int64
	}
	var kvs []kv
	for k, v := range byOp {
		kvs = append(kvs, kv{k, v})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].v > kvs[j].v })
	t.Logf("total node time %d µs (2 runs)", total)
	for _, x := range kvs[:min(15, len(kvs))] {
		t.Logf("%-20s %8d µs", x.k, x.v)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].dur > nodes[j].dur })
	for _, x := range nodes[:15] {
		t.Logf("%-50s %8d µs %v", x.name, x.dur, x.sh)
	}
}
