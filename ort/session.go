package ort

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	ortgo "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"

	"github.com/netssm/netssm/onnxpb"
)

// InitOptions choose the library and whether a missing one is provisioned.
type InitOptions struct {
	LibPath   string // --ort-lib; "" resolves in the documented order
	AutoSetup bool   // run Setup (npm) when no library is found
	Progress  bool   // show Setup's download progress bar
}

// Info describes the initialised runtime.
type Info struct {
	Version string // ONNX Runtime's own version string
	Path    string // the library that was loaded
	Source  Source
}

var (
	initMu   sync.Mutex
	initInfo *Info
	initErr  error
)

// Init loads and initialises ONNX Runtime once per process. Later calls return
// the first call's outcome.
func Init(o InitOptions) (Info, error) {
	initMu.Lock()
	defer initMu.Unlock()
	if initInfo != nil {
		return *initInfo, nil
	}
	if initErr != nil {
		return Info{}, initErr
	}
	info, err := initialize(o)
	if err != nil {
		// A failure before dlopen can be retried (e.g. after setup); after
		// dlopen the process is committed to that library.
		if ortgo.IsInitialized() {
			initErr = err
		}
		return Info{}, err
	}
	initInfo = &info
	return info, nil
}

func initialize(o InitOptions) (Info, error) {
	keepFreedBlocks()
	loc, err := Locate(o.LibPath)
	if errors.Is(err, ErrNotFound) && o.AutoSetup && o.LibPath == "" && os.Getenv("NETSSM_ORT_LIB") == "" {
		slog.Info("ONNX Runtime not found; provisioning it with npm", "version", Version)
		if _, serr := Setup(context.Background(), SetupOptions{EP: "cpu", Progress: o.Progress}); serr != nil {
			return Info{}, fmt.Errorf("%w (automatic setup also failed: %v)", err, serr)
		}
		loc, err = Locate("")
	}
	if err != nil {
		return Info{}, err
	}
	if err := checkSharedObject(loc.Path); err != nil {
		return Info{}, err
	}
	ortgo.SetSharedLibraryPath(loc.Path)
	if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
		return Info{}, fmt.Errorf("loading ONNX Runtime from %s (%s) failed: %v; netssm needs ONNX Runtime %s (C API 24): run `netssm-cli setup` or point NETSSM_ORT_LIB at the right library", loc.Path, loc.Source, err, Version)
	}
	_ = ortgo.DisableTelemetry() // netssm sends nothing anywhere
	v := ortgo.GetVersion()
	if v != Version {
		_ = ortgo.DestroyEnvironment()
		return Info{}, fmt.Errorf("%s (%s) is ONNX Runtime %s, netssm needs %s: run `netssm-cli setup` or point NETSSM_ORT_LIB at an ONNX Runtime %s library", loc.Path, loc.Source, v, Version, Version)
	}
	return Info{Version: v, Path: loc.Path, Source: loc.Source}, nil
}

// OptLevel is ONNX Runtime's graph optimisation level.
type OptLevel int

const (
	OptAll OptLevel = iota // the default
	OptExtended
	OptBasic
	OptDisable
)

// ParseOptLevel reads "all", "extended", "basic" or "disable".
func ParseOptLevel(s string) (OptLevel, error) {
	switch s {
	case "", "all":
		return OptAll, nil
	case "extended":
		return OptExtended, nil
	case "basic":
		return OptBasic, nil
	case "disable", "none":
		return OptDisable, nil
	}
	return 0, fmt.Errorf("unknown graph optimisation level %q (all | extended | basic | disable)", s)
}

func (l OptLevel) ort() ortgo.GraphOptimizationLevel {
	switch l {
	case OptExtended:
		return ortgo.GraphOptimizationLevelEnableExtended
	case OptBasic:
		return ortgo.GraphOptimizationLevelEnableBasic
	case OptDisable:
		return ortgo.GraphOptimizationLevelDisableAll
	}
	return ortgo.GraphOptimizationLevelEnableAll
}

// SessionOptions choose where and how a graph runs.
type SessionOptions struct {
	EP       string // "cpu" (default) or "cuda"
	Threads  int    // intra-op threads; 0: one per CPU the process may run on (DefaultThreads)
	OptLevel OptLevel
	Device   int // CUDA device id
	// IOBinding: whether loops keep the tensors they carry from one Run to
	// the next (a training step's parameters and moments, a decoder's
	// recurrent states) in the provider's memory with I/O binding: "auto"
	// or "" (under CUDA only), "on", "off".
	IOBinding string
}

// UseBinding resolves IOBinding.
func (o SessionOptions) UseBinding() bool {
	switch o.IOBinding {
	case "on":
		return true
	case "off":
		return false
	}
	return o.EP == "cuda"
}

// ParseIOBinding checks an --io-binding value.
func ParseIOBinding(s string) error {
	switch s {
	case "", "auto", "on", "off":
		return nil
	}
	return fmt.Errorf("--io-binding must be auto, on or off, not %q", s)
}

// DefaultThreads is the intra-op thread count of a session that asks for
// none: the CPUs the process may run on (its affinity mask, as taskset,
// cgroup cpusets and container runtimes set it). ONNX Runtime's own default
// counts the machine's cores instead, so a process held to one core would
// run two spinning threads on it, each waiting on the other.
func DefaultThreads() int { return runtime.NumCPU() }

// Session is a graph loaded into ONNX Runtime.
type Session struct {
	s       *ortgo.DynamicAdvancedSession
	inputs  []string
	outputs []string
	model   []byte // kept only when NETSSM_DUMP_ONNX is set
	ep      string
	device  int
	dev     *deviceAllocator // I/O binding: the provider's allocator, made on first use
	copiers map[int]*Session // I/O binding: identity graphs for Download/Upload
}

// NewSession compiles a serialized ONNX ModelProto. Init must have succeeded.
func NewSession(model []byte, o SessionOptions) (*Session, error) {
	if !ortgo.IsInitialized() {
		return nil, errors.New("ONNX Runtime is not initialised (call ort.Init first)")
	}
	ins, outs, err := modelIO(model)
	if err != nil {
		dumpModel(model, "load")
		return nil, err
	}
	opts, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("creating session options: %w", err)
	}
	defer opts.Destroy()
	threads := o.Threads
	if threads <= 0 {
		threads = DefaultThreads()
	}
	ortThreads := threads
	if usesOwnThreads(model) {
		ortThreads = 1 // the session's threads are BlockStep's (usesOwnThreads)
	}
	if err := opts.SetIntraOpNumThreads(ortThreads); err != nil {
		return nil, fmt.Errorf("setting %d threads: %w", ortThreads, err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("setting inter-op threads: %w", err)
	}
	if err := opts.SetGraphOptimizationLevel(o.OptLevel.ort()); err != nil {
		return nil, fmt.Errorf("setting the optimisation level: %w", err)
	}
	if prefix := os.Getenv("NETSSM_ORT_PROFILE"); prefix != "" {
		// ONNX Runtime writes a Chrome-trace JSON of every op per session.
		if err := opts.EnableProfiling(prefix); err != nil {
			return nil, fmt.Errorf("enabling ONNX Runtime profiling: %w", err)
		}
	}
	if usesFused(model) {
		if err := registerFused(opts); err != nil {
			return nil, err
		}
	}
	switch o.EP {
	case "", "cpu":
	case "cuda":
		if err := appendCUDA(opts, o.Device); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown execution provider %q (cpu | cuda)", o.EP)
	}
	s, err := createSession(model, ins, outs, opts, threads)
	if err != nil {
		dumpModel(model, "session")
		return nil, fmt.Errorf("creating an ONNX Runtime session (%s): %w", epName(o.EP), err)
	}
	sess := &Session{s: s, inputs: ins, outputs: outs, ep: epName(o.EP), device: o.Device}
	if os.Getenv("NETSSM_DUMP_ONNX") != "" {
		sess.model = model
	}
	return sess, nil
}

func epName(ep string) string {
	if ep == "" {
		return "cpu"
	}
	return ep
}

// InputNames lists the graph's inputs in order.
func (s *Session) InputNames() []string { return s.inputs }

// OutputNames lists the graph's outputs in order.
func (s *Session) OutputNames() []string { return s.outputs }

// modelGraph parses a serialized model's graph and the names of its
// initializers (inputs that are initializers are no inputs of a Run).
func modelGraph(model []byte) (*onnxpb.GraphProto, map[string]bool, error) {
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(model, &m); err != nil {
		return nil, nil, fmt.Errorf("the model is not a valid ONNX ModelProto: %w", err)
	}
	g := m.GetGraph()
	if g == nil {
		return nil, nil, fmt.Errorf("the ONNX model has no graph")
	}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	return g, inits, nil
}

// modelIO reads the input and output names from the ModelProto itself
// (inputs that are initializers excluded), without compiling a session.
func modelIO(model []byte) (inputs, outputs []string, err error) {
	g, inits, err := modelGraph(model)
	if err != nil {
		return nil, nil, err
	}
	for _, in := range g.GetInput() {
		if !inits[in.GetName()] {
			inputs = append(inputs, in.GetName())
		}
	}
	for _, out := range g.GetOutput() {
		outputs = append(outputs, out.GetName())
	}
	return inputs, outputs, nil
}

// Close releases the session.
func (s *Session) Close() error {
	if s == nil || s.s == nil {
		return nil
	}
	for _, c := range s.copiers {
		c.Close()
	}
	s.copiers = nil
	if s.dev != nil {
		s.dev.release()
		s.dev = nil
	}
	err := s.s.Destroy()
	s.s = nil
	return err
}

// Run feeds every input by name and returns every output as Go-owned copies.
func (s *Session) Run(feeds map[string]*Tensor) (map[string]*Tensor, error) {
	inputs := make([]ortgo.Value, len(s.inputs))
	defer func() {
		for _, v := range inputs {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, name := range s.inputs {
		t, ok := feeds[name]
		if !ok {
			return nil, fmt.Errorf("missing input %q (the graph takes %s)", name, strings.Join(s.InputNames(), ", "))
		}
		v, err := t.value()
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", name, err)
		}
		inputs[i] = v
	}
	if len(feeds) != len(s.inputs) {
		for name := range feeds {
			if !contains(s.InputNames(), name) {
				return nil, fmt.Errorf("unknown input %q (the graph takes %s)", name, strings.Join(s.InputNames(), ", "))
			}
		}
	}
	outputs := make([]ortgo.Value, len(s.outputs))
	if err := s.s.Run(inputs, outputs); err != nil {
		// Outputs are not allocated (or are typed nils) when Run fails.
		dumpModel(s.model, "run")
		return nil, fmt.Errorf("running the graph: %w", err)
	}
	defer func() {
		for _, v := range outputs {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	res := make(map[string]*Tensor, len(outputs))
	for i, v := range outputs {
		t, err := fromValue(v)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", s.outputs[i], err)
		}
		res[s.outputs[i]] = t
	}
	return res, nil
}

// RunValues runs with caller-owned ONNX Runtime values in InputNames and
// OutputNames order; a nil output is allocated by ONNX Runtime and must be
// destroyed by the caller. It is the zero-copy path used by the training loop.
func (s *Session) RunValues(inputs, outputs []ortgo.Value) error {
	if err := s.s.Run(inputs, outputs); err != nil {
		dumpModel(s.model, "run")
		return fmt.Errorf("running the graph: %w", err)
	}
	return nil
}

// Raw exposes the underlying onnxruntime_go session (I/O binding).
func (s *Session) Raw() *ortgo.DynamicAdvancedSession { return s.s }

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func dumpModel(model []byte, stage string) {
	dir := os.Getenv("NETSSM_DUMP_ONNX")
	if dir == "" || len(model) == 0 {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		slog.Warn("NETSSM_DUMP_ONNX: cannot create directory", "dir", dir, "err", err)
		return
	}
	p := filepath.Join(dir, fmt.Sprintf("failed-%s-%s.onnx", stage, time.Now().Format("20060102-150405.000000")))
	if err := os.WriteFile(p, model, 0o644); err != nil {
		slog.Warn("NETSSM_DUMP_ONNX: cannot write model", "path", p, "err", err)
		return
	}
	slog.Warn("saved the failing model for inspection", "path", p)
}

// haveCommand reports whether a program is on PATH.
func haveCommand(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// EP is the execution provider the session runs on ("cpu" or "cuda").
func (s *Session) EP() string { return s.ep }

// ModelIOInfo is the name, element type and shape of each input (those not
// given by initializers) and output of a serialized model, read from the
// ModelProto itself: unlike onnxruntime_go's GetInputOutputInfoWithONNXData
// it compiles no session, so it also works for models that use netssm's
// custom ops. Every input and output must be a tensor of a fixed shape.
func ModelIOInfo(model []byte) (inputs, outputs []IOInfo, err error) {
	g, inits, err := modelGraph(model)
	if err != nil {
		return nil, nil, err
	}
	info := func(v *onnxpb.ValueInfoProto) (ortgo.InputOutputInfo, error) {
		tt := v.GetType().GetTensorType()
		if tt == nil {
			return ortgo.InputOutputInfo{}, fmt.Errorf("model value %q is not a tensor", v.GetName())
		}
		var dims ortgo.Shape
		for _, d := range tt.GetShape().GetDim() {
			dv, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue)
			if !ok {
				return ortgo.InputOutputInfo{}, fmt.Errorf("model value %q has a dimension of no fixed size", v.GetName())
			}
			dims = append(dims, dv.DimValue)
		}
		// ONNX's TensorProto.DataType and ONNX Runtime's element types share their numbers.
		return ortgo.InputOutputInfo{Name: v.GetName(), OrtValueType: ortgo.ONNXTypeTensor, Dimensions: dims, DataType: ortgo.TensorElementDataType(tt.GetElemType())}, nil
	}
	for _, in := range g.GetInput() {
		if inits[in.GetName()] {
			continue
		}
		i, err := info(in)
		if err != nil {
			return nil, nil, err
		}
		inputs = append(inputs, i)
	}
	for _, out := range g.GetOutput() {
		o, err := info(out)
		if err != nil {
			return nil, nil, err
		}
		outputs = append(outputs, o)
	}
	return inputs, outputs, nil
}
