package export_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/netssm/netssm/export"
	"github.com/netssm/netssm/model"
)

func TestSummaryReportsConfigCountAndGraphs(t *testing.T) {
	c := tinyConfig(t)
	s, err := export.Summarize("preset tiny", c, export.Options{PrefillLength: 24, StepBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	if s.ParamCount != model.ParamCount(c) || s.ParamBytes != 4*s.ParamCount {
		t.Errorf("summary counts %d parameters in %d bytes, want %d in %d", s.ParamCount, s.ParamBytes, model.ParamCount(c), 4*model.ParamCount(c))
	}
	if len(s.Graphs) != 2 || s.Graphs[0].Length != 24 || s.Graphs[1].Batch != 3 || s.Graphs[0].Nodes == 0 || s.Graphs[1].Bytes == 0 {
		t.Fatalf("graph summaries %+v", s.Graphs)
	}
	// Without weights a preset's graphs are small; a bundle's hold them.
	dir, _ := writeBundle(t, c, 1, export.Options{PrefillLength: 24, StepBatch: 3, ExternalDataThreshold: -1})
	bs, err := load(t, dir).Summary()
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range bs.Graphs {
		if g.Bytes < s.ParamBytes || g.Bytes <= s.Graphs[i].Bytes {
			t.Errorf("%s: bundle graph %d bytes, weightless %d, weights %d", g.Name, g.Bytes, s.Graphs[i].Bytes, s.ParamBytes)
		}
		if g.Batch != s.Graphs[i].Batch || g.Length != s.Graphs[i].Length {
			t.Errorf("%s: bundle says batch %d length %d, preset %d %d", g.Name, g.Batch, g.Length, s.Graphs[i].Batch, s.Graphs[i].Length)
		}
	}
	var text bytes.Buffer
	if err := bs.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{fmt.Sprintf(" %d (73.8 k)", s.ParamCount), "prefill.onnx", "step.onnx", "batch 3", "netssm-test", "ONNX Runtime"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary text lacks %q:\n%s", want, text.String())
		}
	}
}

func ExampleSummarize() {
	c, _ := model.Preset("paper")
	s, err := export.Summarize("preset paper", c, export.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s: %d parameters, %s\n", s.Source, s.ParamCount, s.Config)
	// Output: preset paper: 90577344 parameters, Mamba-2 D=768 layers=24 N=128 P=64 H=24 expand=2 W=4 Q=256 V=272
}
