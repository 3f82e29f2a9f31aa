package export

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/netssm/netssm/graph"
	"github.com/netssm/netssm/model"
	"github.com/netssm/netssm/onnxpb"
)

// Bundle is a model bundle that Load has verified.
type Bundle struct {
	Dir      string
	Manifest Manifest
}

// ErrMismatch marks a bundle whose files do not match its model.json (a
// changed, truncated or foreign file); errors.Is finds it in Load's error.
var ErrMismatch = errors.New("bundle does not match its model.json")

// Load reads and verifies the bundle in dir: model.json must be a bundle of
// FormatVersion with a valid config and parameter count; every file it lists
// must have the recorded size and sha256; and the prefill and step graphs
// must have the inputs, outputs and parameter initializers that the config,
// batch and length imply. The error names the offending file.
func Load(dir string) (*Bundle, error) {
	mpath := filepath.Join(dir, ManifestFile)
	raw, err := os.ReadFile(mpath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a model bundle: %s is missing (export one with `netssm-cli export`)", dir, ManifestFile)
		}
		return nil, fmt.Errorf("reading %s: %w", mpath, err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: not a bundle manifest: %w", mpath, err)
	}
	if m.Format != FormatVersion {
		return nil, fmt.Errorf("%s: bundle format %d, this netssm reads format %d (re-export the model with this version)", mpath, m.Format, FormatVersion)
	}
	if err := m.Config.Validate(); err != nil {
		return nil, fmt.Errorf("%s: config: %w", mpath, err)
	}
	need := []string{PrefillFile, StepFile}
	if m.ExternalWeights {
		need = append(need, WeightsFile)
	}
	for _, name := range need {
		if _, ok := m.Files[name]; !ok {
			return nil, fmt.Errorf("%s: no checksum recorded for %s: %w", mpath, name, ErrMismatch)
		}
	}
	if m.Prefill.File != PrefillFile || m.Step.File != StepFile {
		return nil, fmt.Errorf("%s: graphs named %q and %q, expected %s and %s: %w", mpath, m.Prefill.File, m.Step.File, PrefillFile, StepFile, ErrMismatch)
	}
	names := make([]string, 0, len(m.Files))
	for name := range m.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name != filepath.Base(name) || name == ManifestFile || strings.HasPrefix(name, ".") {
			return nil, fmt.Errorf("%s: file entry %q is not a plain file name of the bundle: %w", mpath, name, ErrMismatch)
		}
		if err := verifyFile(filepath.Join(dir, name), m.Files[name]); err != nil {
			return nil, err
		}
	}
	held := m.Files[PrefillFile].Bytes + m.Files[WeightsFile].Bytes // the parameters are in one or the other
	if err := paramsFit(m.Config, held); err != nil {
		return nil, fmt.Errorf("%s: config: %w: %w", mpath, err, ErrMismatch)
	}
	if want := model.ParamCount(m.Config); m.ParamCount != want {
		return nil, fmt.Errorf("%s: param_count %d, but the config has %d parameters: %w", mpath, m.ParamCount, want, ErrMismatch)
	}
	b := &Bundle{Dir: dir, Manifest: m}
	for _, gi := range []GraphInfo{m.Prefill, m.Step} {
		if err := b.checkGraph(gi); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// paramsFit checks that the parameters the config describes fit in the
// held bytes of the files that store them (4 per value at least), computing
// every size without overflow and before anything is sized from the config.
// Every layer has the same parameters, so a one-layer config is listed.
func paramsFit(c model.Config, held int64) error {
	limit := held / 4
	one := c
	one.Layers = 1
	var fixed, perLayer int64
	for _, ps := range model.ParamShapes(one) {
		n, ok := boundedProduct(ps.Shape, limit)
		if !ok {
			return fmt.Errorf("parameter %s of shape %v does not fit the %d bytes that hold the parameters", ps.Name, ps.Shape, held)
		}
		if strings.HasPrefix(ps.Name, model.LayerPrefix(0)+".") {
			perLayer += n
		} else {
			fixed += n
		}
	}
	if perLayer == 0 || int64(c.Layers) > (limit-min(fixed, limit))/perLayer {
		return fmt.Errorf("%d layers of %d parameters each do not fit the %d bytes that hold the parameters", c.Layers, perLayer, held)
	}
	return nil
}

// boundedProduct multiplies dims, failing on a negative one or a product
// above limit.
func boundedProduct(dims []int, limit int64) (int64, bool) {
	n := int64(1)
	for _, d := range dims {
		if d < 0 || (d > 0 && n > limit/int64(d)) {
			return 0, false
		}
		n *= int64(d)
	}
	return n, n <= limit
}

// verifyFile checks a file's size, then its sha256, against the manifest's
// record.
func verifyFile(path string, want FileSum) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s is missing (the bundle is incomplete; re-export it): %w", path, ErrMismatch)
		}
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if n := st.Size(); n != want.Bytes || !st.Mode().IsRegular() {
		return fmt.Errorf("%s has %d bytes, %s records %d (the file was changed or truncated; re-export the bundle): %w", path, n, ManifestFile, want.Bytes, ErrMismatch)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, want.Bytes)); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return fmt.Errorf("%s has sha256 %s, %s records %s (the file was changed; re-export the bundle): %w", path, got, ManifestFile, want.SHA256, ErrMismatch)
	}
	return nil
}

// checkGraph verifies that a graph file's signature and initializers are
// the ones the manifest's config, batch and length imply.
func (b *Bundle) checkGraph(gi GraphInfo) error {
	path := filepath.Join(b.Dir, gi.File)
	mp, err := readModel(path)
	if err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s (does not match %s; re-export the bundle): %w", path, fmt.Sprintf(format, args...), ManifestFile, ErrMismatch)
	}
	c := b.Manifest.Config
	ft, ok := parseFloat(gi.Float)
	if !ok {
		return fmt.Errorf("%s: graph float type %q is neither float32 nor float64: %w", filepath.Join(b.Dir, ManifestFile), gi.Float, ErrMismatch)
	}
	if gi.Batch <= 0 || gi.Length <= 0 || (gi.File == StepFile && gi.Length != 1) {
		return fmt.Errorf("%s: %s batch %d length %d: %w", filepath.Join(b.Dir, ManifestFile), gi.File, gi.Batch, gi.Length, ErrMismatch)
	}
	type sig struct {
		dtype int32
		shape []int64
	}
	ins, outs := map[string]sig{}, map[string]sig{}
	idShape := []int64{int64(gi.Batch), int64(gi.Length)}
	if gi.File == StepFile {
		idShape = idShape[:1]
	}
	ins[model.InIDs] = sig{int32(graph.Int64), idShape}
	outs[model.OutLogits] = sig{int32(ft), []int64{int64(gi.Batch), int64(c.VocabSize)}}
	in, out := model.StateNames(c)
	for i, s := range model.StateShapes(c, gi.Batch) {
		ins[in[i]] = sig{int32(ft), int64s(s)}
		outs[out[i]] = sig{int32(ft), int64s(s)}
	}
	g := mp.GetGraph()
	check := func(what string, vis []*onnxpb.ValueInfoProto, want map[string]sig) error {
		seen := map[string]bool{}
		for _, vi := range vis {
			name := vi.GetName()
			w, ok := want[name]
			if !ok {
				return bad("unexpected %s %q", what, name)
			}
			seen[name] = true
			tt := vi.GetType().GetTensorType()
			var dims []int64
			for _, d := range tt.GetShape().GetDim() {
				dims = append(dims, d.GetDimValue())
			}
			if tt.GetElemType() != w.dtype || !slices.Equal(dims, w.shape) {
				return bad("%s %q is %v%v, expected %v%v", what, name, graph.DType(tt.GetElemType()), dims, graph.DType(w.dtype), w.shape)
			}
		}
		for name := range want {
			if !seen[name] {
				return bad("%s %q is missing", what, name)
			}
		}
		return nil
	}
	if err := check("input", g.GetInput(), ins); err != nil {
		return err
	}
	if err := check("output", g.GetOutput(), outs); err != nil {
		return err
	}
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = t
	}
	for _, ps := range model.ParamShapes(c) {
		t, ok := inits[ps.Name]
		if !ok {
			return bad("parameter %s is not an initializer", ps.Name)
		}
		if t.GetDataType() != int32(ft) || !slices.Equal(t.GetDims(), int64s(ps.Shape)) {
			return bad("parameter %s is %v%v, expected %v%v", ps.Name, graph.DType(t.GetDataType()), t.GetDims(), ft, ps.Shape)
		}
		if external := t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL; external != b.Manifest.ExternalWeights {
			return bad("parameter %s external=%v, the manifest says external_weights=%v", ps.Name, external, b.Manifest.ExternalWeights)
		}
	}
	return nil
}

// Graph returns the serialized ONNX model of a graph file (PrefillFile or
// StepFile), ready for ort.NewSession: external weights are read back into
// the model (they were verified by Load).
func (b *Bundle) Graph(file string) ([]byte, error) {
	if file != PrefillFile && file != StepFile {
		return nil, fmt.Errorf("bundle %s has no graph %q (use %s or %s)", b.Dir, file, PrefillFile, StepFile)
	}
	path := filepath.Join(b.Dir, file)
	if !b.Manifest.ExternalWeights {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		return raw, nil
	}
	mp, err := b.resolved(file)
	if err != nil {
		return nil, err
	}
	raw, err := proto.Marshal(mp)
	if err != nil {
		return nil, fmt.Errorf("%s: marshalling with inlined weights: %w", path, err)
	}
	return raw, nil
}

// resolved reads a graph file and inlines its external data.
func (b *Bundle) resolved(file string) (*onnxpb.ModelProto, error) {
	path := filepath.Join(b.Dir, file)
	mp, err := readModel(path)
	if err != nil {
		return nil, err
	}
	var weights *os.File
	var weightsSize int64
	defer func() {
		if weights != nil {
			weights.Close()
		}
	}()
	for _, t := range mp.GetGraph().GetInitializer() {
		if t.GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
			continue
		}
		kv := map[string]string{}
		for _, e := range t.GetExternalData() {
			kv[e.GetKey()] = e.GetValue()
		}
		if kv["location"] != WeightsFile {
			return nil, fmt.Errorf("%s: initializer %s points at external file %q, only %s belongs to the bundle: %w", path, t.GetName(), kv["location"], WeightsFile, ErrMismatch)
		}
		off, err1 := strconv.ParseInt(kv["offset"], 10, 64)
		n, err2 := strconv.ParseInt(kv["length"], 10, 64)
		if err1 != nil || err2 != nil || off < 0 || n < 0 || n > math.MaxInt32*4 {
			return nil, fmt.Errorf("%s: initializer %s has a bad external offset %q or length %q: %w", path, t.GetName(), kv["offset"], kv["length"], ErrMismatch)
		}
		if weights == nil {
			if weights, err = os.Open(filepath.Join(b.Dir, WeightsFile)); err != nil {
				return nil, fmt.Errorf("opening %s: %w", filepath.Join(b.Dir, WeightsFile), err)
			}
			st, err := weights.Stat()
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", filepath.Join(b.Dir, WeightsFile), err)
			}
			weightsSize = st.Size()
		}
		if off > weightsSize || n > weightsSize-off {
			return nil, fmt.Errorf("%s: initializer %s lies at %d+%d bytes of the %d-byte %s: %w", path, t.GetName(), off, n, weightsSize, WeightsFile, ErrMismatch)
		}
		data := make([]byte, n)
		if _, err := weights.ReadAt(data, off); err != nil {
			return nil, fmt.Errorf("%s: reading %s at %d+%d for %s: %w", path, WeightsFile, off, n, t.GetName(), err)
		}
		t.RawData = data
		t.DataLocation = nil
		t.ExternalData = nil
	}
	return mp, nil
}

// Params reads the parameters back from the prefill graph, by state-dict
// name, as float32 (a float64 bundle is rounded).
func (b *Bundle) Params() (map[string][]float32, error) {
	mp, err := b.resolved(PrefillFile)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(b.Dir, PrefillFile)
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range mp.GetGraph().GetInitializer() {
		inits[t.GetName()] = t
	}
	out := map[string][]float32{}
	for _, ps := range model.ParamShapes(b.Manifest.Config) {
		t := inits[ps.Name]
		if t == nil {
			return nil, fmt.Errorf("%s: parameter %s is not an initializer: %w", path, ps.Name, ErrMismatch)
		}
		v, err := decodeFloats(t, ps.Size())
		if err != nil {
			return nil, fmt.Errorf("%s: parameter %s: %w", path, ps.Name, err)
		}
		out[ps.Name] = v
	}
	return out, nil
}

func decodeFloats(t *onnxpb.TensorProto, n int) ([]float32, error) {
	raw := t.GetRawData()
	switch graph.DType(t.GetDataType()) {
	case graph.Float32:
		if len(raw) == 4*n {
			out := make([]float32, n)
			for i := range out {
				out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
			return out, nil
		}
		if fd := t.GetFloatData(); len(fd) == n {
			return slices.Clone(fd), nil
		}
	case graph.Float64:
		if len(raw) == 8*n {
			out := make([]float32, n)
			for i := range out {
				out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
			}
			return out, nil
		}
		if dd := t.GetDoubleData(); len(dd) == n {
			out := make([]float32, n)
			for i, v := range dd {
				out[i] = float32(v)
			}
			return out, nil
		}
	default:
		return nil, fmt.Errorf("element type %v is not a float", graph.DType(t.GetDataType()))
	}
	return nil, fmt.Errorf("holds no data for its %d elements", n)
}

func readModel(path string) (*onnxpb.ModelProto, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(raw, &mp); err != nil {
		return nil, fmt.Errorf("%s is not an ONNX model: %w", path, err)
	}
	if mp.GetGraph() == nil {
		return nil, fmt.Errorf("%s: the ONNX model has no graph", path)
	}
	return &mp, nil
}

func parseFloat(s string) (graph.DType, bool) {
	switch s {
	case graph.Float32.String():
		return graph.Float32, true
	case graph.Float64.String():
		return graph.Float64, true
	}
	return 0, false
}

func int64s(s []int) []int64 {
	o := make([]int64, len(s))
	for i, d := range s {
		o[i] = int64(d)
	}
	return o
}
