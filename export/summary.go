package export

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/proto"

	"github.com/netssm/netssm/model"
)

// Summary describes a model and its inference graphs for people
// (`netssm-cli model info`).
type Summary struct {
	Source     string // the preset or bundle it describes
	Config     model.Config
	ParamCount int64
	ParamBytes int64 // in the graphs' float type
	Graphs     []GraphSummary
	Manifest   *Manifest // set for a bundle
}

// GraphSummary is one graph's shape and size.
type GraphSummary struct {
	Name          string
	Batch, Length int
	Float         string
	Nodes         int
	Bytes         int64 // the .onnx file (for a preset: without weights)
}

// Summarize builds the prefill and step graphs of c (parameters as inputs,
// so without weights) with o's shapes and reports their sizes.
func Summarize(source string, c model.Config, o Options) (*Summary, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	o = o.withDefaults(c)
	s := &Summary{Source: source, Config: c, ParamCount: model.ParamCount(c)}
	s.ParamBytes = s.ParamCount * int64(elemSize(o.Float))
	pg, err := model.NewPrefillGraph(c, o.PrefillBatch, o.PrefillLength, o.Float)
	if err != nil {
		return nil, err
	}
	sg, err := model.NewStepGraph(c, o.StepBatch, o.Float)
	if err != nil {
		return nil, err
	}
	for _, g := range []struct {
		name          string
		batch, length int
		nodes         int
		build         func() ([]byte, error)
	}{
		{PrefillFile, o.PrefillBatch, o.PrefillLength, pg.NumNodes(), func() ([]byte, error) { return pg.Serialize() }},
		{StepFile, o.StepBatch, 1, sg.NumNodes(), func() ([]byte, error) { return sg.Serialize() }},
	} {
		raw, err := g.build()
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", g.name, err)
		}
		s.Graphs = append(s.Graphs, GraphSummary{Name: g.name, Batch: g.batch, Length: g.length, Float: o.Float.String(), Nodes: g.nodes, Bytes: int64(len(raw))})
	}
	return s, nil
}

// Summary describes the bundle from its manifest and graph files.
func (b *Bundle) Summary() (*Summary, error) {
	m := b.Manifest
	s := &Summary{Source: b.Dir, Config: m.Config, ParamCount: m.ParamCount, Manifest: &b.Manifest}
	ft, _ := parseFloat(m.Prefill.Float)
	s.ParamBytes = m.ParamCount * int64(elemSize(ft))
	for _, gi := range []GraphInfo{m.Prefill, m.Step} {
		mp, err := readModel(filepath.Join(b.Dir, gi.File))
		if err != nil {
			return nil, err
		}
		s.Graphs = append(s.Graphs, GraphSummary{Name: gi.File, Batch: gi.Batch, Length: gi.Length, Float: gi.Float,
			Nodes: len(mp.GetGraph().GetNode()), Bytes: int64(proto.Size(mp))})
	}
	return s, nil
}

// WriteText prints the summary as aligned text.
func (s *Summary) WriteText(w io.Writer) error {
	c := s.Config
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\n", s.Source)
	fmt.Fprintf(tw, "architecture\tMamba-2, %d layers, no MLP blocks, tied embeddings\n", c.Layers)
	fmt.Fprintf(tw, "d_model D\t%d\n", c.DModel)
	fmt.Fprintf(tw, "d_inner\t%d (expand %d)\n", c.DInner(), c.Expand)
	fmt.Fprintf(tw, "heads H × headdim P\t%d × %d\n", c.Heads(), c.HeadDim)
	fmt.Fprintf(tw, "d_state N\t%d (ngroups %d)\n", c.DState, c.NGroups)
	fmt.Fprintf(tw, "d_conv W\t%d\n", c.DConv)
	fmt.Fprintf(tw, "chunk size Q\t%d\n", c.ChunkSize)
	fmt.Fprintf(tw, "vocabulary V\t%d\n", c.VocabSize)
	fmt.Fprintf(tw, "parameters\t%d (%s)\n", s.ParamCount, humanCount(s.ParamCount))
	fmt.Fprintf(tw, "weights\t%s\n", humanBytes(s.ParamBytes))
	fmt.Fprintf(tw, "state per sequence\t%s\n", humanBytes(stateBytes(c, s.ParamBytes/max(s.ParamCount, 1))))
	if m := s.Manifest; m != nil {
		fmt.Fprintf(tw, "labels\t%d: %s\n", len(m.Labels), strings.Join(m.Labels, " "))
		fmt.Fprintf(tw, "created\t%s by %s\n", m.Provenance.Created.Format("2006-01-02 15:04:05Z07:00"), orDash(m.Provenance.Tool))
		if m.Provenance.Run != "" || m.Provenance.Step != 0 {
			fmt.Fprintf(tw, "trained\trun %s, step %d, %d tokens, val loss %.4g nats/token\n", orDash(m.Provenance.Run), m.Provenance.Step, m.Provenance.Tokens, m.Provenance.ValLoss)
		}
		fmt.Fprintf(tw, "ONNX Runtime\t%s\n", m.ORTVersion)
		where := "inside the graphs"
		if m.ExternalWeights {
			where = WeightsFile + " (ONNX external data)"
		}
		fmt.Fprintf(tw, "weights stored\t%s\n", where)
	}
	for _, g := range s.Graphs {
		what := "(B, L) tokens"
		if g.Length == 1 && g.Name == StepFile {
			what = "(B) tokens"
		}
		fmt.Fprintf(tw, "%s\tbatch %d, length %d %s, %s, %d nodes, %s\n", g.Name, g.Batch, g.Length, what, g.Float, g.Nodes, humanBytes(g.Bytes))
	}
	return tw.Flush()
}

// stateBytes is the recurrent state of one sequence: per layer conv
// (conv_dim × W) and SSM (H × P × N) values of elem bytes.
func stateBytes(c model.Config, elem int64) int64 {
	per := int64(c.ConvDim()*c.DConv + c.Heads()*c.HeadDim*c.DState)
	return int64(c.Layers) * per * elem
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f G", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f M", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f k", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
