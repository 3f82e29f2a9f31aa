package export

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/onnxpb"
)

// Info is what the caller knows about the model besides its parameters.
type Info struct {
	Config     model.Config
	Tokenizer  json.RawMessage // the tokenizer spec, stored verbatim
	Labels     []string
	Timing     json.RawMessage // timing tables, stored verbatim
	Provenance Provenance      // Created defaults to now
	// ORTVersion is the ONNX Runtime release the caller runs the graphs
	// with (ort.Version), recorded in the manifest.
	ORTVersion string
}

// Options choose the shapes and storage of the exported graphs.
type Options struct {
	PrefillBatch  int // sequences per prefill run; default 1
	PrefillLength int // tokens per prefill run; default the config's chunk size
	StepBatch     int // sequences per step run; default 1
	// Float is the graphs' float type: graph.Float32 (default) for use,
	// graph.Float64 for exact checks. Parameters are widened as needed.
	Float graph.DType
	// ExternalDataThreshold is the parameter size in bytes above which the
	// parameters go to WeightsFile as ONNX external data shared by both
	// graphs (protobuf cannot hold a model over 2 GB, and one copy of large
	// weights is enough). 0 means DefaultExternalDataThreshold; negative
	// never externalises.
	ExternalDataThreshold int64
	// Overwrite replaces an existing bundle directory (atomically).
	Overwrite bool
}

// DefaultExternalDataThreshold is 100 MiB: the paper preset (about 360 MB in
// float32) is stored once in weights.bin, the smaller presets inline.
const DefaultExternalDataThreshold = 100 << 20

// externalAlign aligns each tensor in WeightsFile, so that ONNX Runtime can
// map it rather than copy it.
const externalAlign = 4096

func (o Options) withDefaults(c model.Config) Options {
	if o.PrefillBatch <= 0 {
		o.PrefillBatch = 1
	}
	if o.PrefillLength <= 0 {
		o.PrefillLength = c.ChunkSize
	}
	if o.StepBatch <= 0 {
		o.StepBatch = 1
	}
	if o.Float == 0 {
		o.Float = graph.Float32
	}
	if o.ExternalDataThreshold == 0 {
		o.ExternalDataThreshold = DefaultExternalDataThreshold
	}
	return o
}

// Write exports a bundle of the model (config and float32 parameters, by
// state-dict name) to dir. The bundle is built in a temporary directory
// beside dir and renamed into place, so dir is complete or absent; an
// existing dir is an error unless o.Overwrite.
func Write(dir string, info Info, params map[string][]float32, o Options) (*Manifest, error) {
	c := info.Config
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("export: model config: %w", err)
	}
	if err := model.CheckParams(c, params); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	o = o.withDefaults(c)
	if o.Float != graph.Float32 && o.Float != graph.Float64 {
		return nil, fmt.Errorf("export: float type %v: use float32 or float64", o.Float)
	}
	if _, err := os.Stat(dir); err == nil && !o.Overwrite {
		return nil, fmt.Errorf("export: %s already exists (choose another directory or overwrite it)", dir)
	}
	for _, t := range []struct {
		what string
		raw  json.RawMessage
	}{{"tokenizer spec", info.Tokenizer}, {"timing tables", info.Timing}} {
		if len(t.raw) > 0 && !json.Valid(t.raw) {
			return nil, fmt.Errorf("export: the %s is not valid JSON", t.what)
		}
	}

	var values map[string]any
	if o.Float == graph.Float64 {
		values = model.Values64(model.ToFloat64(params))
	} else {
		values = model.Values(params)
	}
	init := graph.Initializers(values)
	pg, err := model.NewPrefillGraph(c, o.PrefillBatch, o.PrefillLength, o.Float)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	prefill, err := pg.Build(init)
	if err != nil {
		return nil, fmt.Errorf("export: building %s: %w", PrefillFile, err)
	}
	sg, err := model.NewStepGraph(c, o.StepBatch, o.Float)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	step, err := sg.Build(init)
	if err != nil {
		return nil, fmt.Errorf("export: building %s: %w", StepFile, err)
	}

	m := &Manifest{
		Format:     FormatVersion,
		Config:     c,
		ParamCount: model.ParamCount(c),
		Tokenizer:  info.Tokenizer,
		Labels:     info.Labels,
		Timing:     info.Timing,
		Provenance: info.Provenance,
		ORTVersion: info.ORTVersion,
		Prefill:    GraphInfo{File: PrefillFile, Batch: o.PrefillBatch, Length: o.PrefillLength, Float: o.Float.String(), Nodes: pg.NumNodes(), CustomOps: customOps(prefill)},
		Step:       GraphInfo{File: StepFile, Batch: o.StepBatch, Length: 1, Float: o.Float.String(), Nodes: sg.NumNodes(), CustomOps: customOps(step)},
		Files:      map[string]FileSum{},
	}
	if m.Provenance.Created.IsZero() {
		m.Provenance.Created = time.Now().UTC().Truncate(time.Second)
	}
	paramBytes := m.ParamCount * int64(elemSize(o.Float))
	m.ExternalWeights = o.ExternalDataThreshold >= 0 && paramBytes > o.ExternalDataThreshold

	parent, base := filepath.Split(filepath.Clean(dir))
	if parent == "" {
		parent = "."
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".partial-*")
	if err != nil {
		return nil, fmt.Errorf("export: creating a temporary directory beside %s: %w", dir, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()

	if m.ExternalWeights {
		sum, err := writeExternal(filepath.Join(tmp, WeightsFile), c, prefill, step)
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		m.Files[WeightsFile] = sum
	}
	for _, f := range []struct {
		name string
		mp   *onnxpb.ModelProto
		gi   *GraphInfo
	}{{PrefillFile, prefill, &m.Prefill}, {StepFile, step, &m.Step}} {
		b, err := proto.Marshal(f.mp)
		if err != nil {
			return nil, fmt.Errorf("export: marshalling %s: %w", f.name, err)
		}
		sum, err := writeSummed(filepath.Join(tmp, f.name), func(w io.Writer) error { _, err := w.Write(b); return err })
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		m.Files[f.name] = sum
		f.gi.Bytes = sum.Bytes
	}
	// Token names like <pkt> stay readable: no HTML escaping.
	if _, err := writeSummed(filepath.Join(tmp, ManifestFile), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp made it private
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := publish(tmp, dir, o.Overwrite); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	done = true
	slog.Debug("exported model bundle", "dir", dir, "params", m.ParamCount, "external_weights", m.ExternalWeights,
		"prefill_bytes", m.Prefill.Bytes, "step_bytes", m.Step.Bytes)
	return m, nil
}

// publish renames the finished temporary directory to dir, moving an old
// bundle aside first (and removing it after) when overwriting.
func publish(tmp, dir string, overwrite bool) error {
	if err := os.Rename(tmp, dir); err == nil {
		return nil
	} else if _, statErr := os.Stat(dir); statErr != nil || !overwrite {
		if statErr == nil {
			return fmt.Errorf("%s already exists", dir)
		}
		return fmt.Errorf("moving the bundle into place: %w", err)
	}
	old := dir + ".old-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := os.Rename(dir, old); err != nil {
		return fmt.Errorf("moving the old %s aside: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if rerr := os.Rename(old, dir); rerr != nil {
			return errors.Join(fmt.Errorf("moving the bundle into place: %w", err), fmt.Errorf("restoring the old bundle from %s: %w", old, rerr))
		}
		return fmt.Errorf("moving the bundle into place: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		slog.Warn("could not remove the replaced bundle", "dir", old, "err", err)
	}
	return nil
}

// writeSummed creates path, fills it, syncs it and returns its size and
// sha256.
func writeSummed(path string, fill func(io.Writer) error) (FileSum, error) {
	f, err := os.Create(path)
	if err != nil {
		return FileSum{}, err
	}
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, h)}
	err = fill(cw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return FileSum{}, fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	return FileSum{Bytes: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeExternal moves every parameter initializer of the two models into
// one external-data file at path (in ParamShapes order, each tensor aligned),
// and points both models' initializers at it.
func writeExternal(path string, c model.Config, models ...*onnxpb.ModelProto) (FileSum, error) {
	type loc struct{ offset, length int64 }
	locs := map[string]loc{}
	byName := map[string]*onnxpb.TensorProto{}
	for _, t := range models[0].GetGraph().GetInitializer() {
		byName[t.GetName()] = t
	}
	sum, err := writeSummed(path, func(w io.Writer) error {
		var off int64
		pad := make([]byte, externalAlign)
		for _, ps := range model.ParamShapes(c) {
			t := byName[ps.Name]
			if t == nil {
				return fmt.Errorf("parameter %s is not an initializer of the prefill graph", ps.Name)
			}
			if r := off % externalAlign; r != 0 {
				if _, err := w.Write(pad[:externalAlign-r]); err != nil {
					return err
				}
				off += externalAlign - r
			}
			raw := t.GetRawData()
			if _, err := w.Write(raw); err != nil {
				return err
			}
			locs[ps.Name] = loc{off, int64(len(raw))}
			off += int64(len(raw))
		}
		return nil
	})
	if err != nil {
		return FileSum{}, err
	}
	for _, mp := range models {
		for _, t := range mp.GetGraph().GetInitializer() {
			l, ok := locs[t.GetName()]
			if !ok {
				continue
			}
			t.RawData = nil
			t.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
			t.ExternalData = []*onnxpb.StringStringEntryProto{
				{Key: proto.String("location"), Value: proto.String(WeightsFile)},
				{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(l.offset, 10))},
				{Key: proto.String("length"), Value: proto.String(strconv.FormatInt(l.length, 10))},
			}
		}
	}
	return sum, nil
}

func elemSize(d graph.DType) int {
	if d == graph.Float64 {
		return 8
	}
	return 4
}

// customOps lists the node types of mp outside the standard ONNX domain, as
// "domain.Op", sorted and without repeats.
func customOps(mp *onnxpb.ModelProto) []string {
	var ops []string
	for _, n := range mp.GetGraph().GetNode() {
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			ops = append(ops, d+"."+n.GetOpType())
		}
	}
	slices.Sort(ops)
	return slices.Compact(ops)
}
