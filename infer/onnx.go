package infer

import (
	"errors"
	"fmt"
	"slices"
	"unsafe"

	"github.com/netssm/netssm/ort"
)

// StepSignature names a step graph's inputs and outputs: one token per
// sequence in, logits out, and each recurrent state tensor in and out (the
// same shape, batch first). Every other input or output is an error.
type StepSignature struct {
	Token  string // int64 (B) or (B, 1)
	Logits string // float32 (B, V) or (B, 1, V)
	States []StatePair
}

// StatePair is one recurrent state tensor's input and output name. InPlace
// says that the step graph reads the input only in the node that writes the
// output, element by element before writing it (the fused MixerStep's conv
// and SSM states), so one buffer can serve as both: a decoding step then
// reads and writes each state once instead of reading one buffer and
// filling another, half the memory traffic of a step at large batches.
type StatePair struct {
	In, Out string
	InPlace bool
}

// ONNXModel runs a model's step graph on ONNX Runtime. Graphs have static
// shapes, so StepGraph builds (or picks) the graph for each batch size
// asked for; the prompt is prefilled by stepping a batch-1 graph through it
// (exactly the recurrence the chunked prefill computes, and one pass per
// job), unless Prefill is set.
type ONNXModel struct {
	Logits    int // V
	Signature StepSignature
	StepGraph func(batch int) ([]byte, error)
	// PrefillFunc, if set, replaces the stepped prefill (e.g. a chunked
	// prefill graph built for the prompt's length).
	PrefillFunc func(prompt []int) ([]float32, State, error)
	Session     ort.SessionOptions
}

// Vocab implements Model.
func (m *ONNXModel) Vocab() int { return m.Logits }

// Prefill implements Model.
func (m *ONNXModel) Prefill(prompt []int) ([]float32, State, error) {
	if m.PrefillFunc != nil {
		return m.PrefillFunc(prompt)
	}
	b, err := m.newBatch(1)
	if err != nil {
		return nil, nil, err
	}
	defer b.Close()
	var logits []float32
	tok := []int{0}
	for _, id := range prompt {
		tok[0] = id
		if logits, err = b.Step(tok); err != nil {
			return nil, nil, err
		}
	}
	if err := b.syncHost(); err != nil {
		return nil, nil, err
	}
	st := make(State, len(b.in))
	for k, t := range b.in {
		st[k] = slices.Clone(t.GetData())
	}
	return slices.Clone(logits[:m.Logits]), st, nil
}

// NewBatch implements Model.
func (m *ONNXModel) NewBatch(size int) (Batch, error) { return m.newBatch(size) }

// onnxBatch holds a step session and its tensors: the state is double
// buffered (a step reads in, writes out, then they swap), so nothing is
// allocated or copied between steps.
//
// With I/O binding (ort.SessionOptions.UseBinding: under CUDA by default)
// the two state sets are device tensors and two bindings alternate (in→out,
// then out→in), so a step sends the tokens up and brings the logits down,
// and nothing else; the host state tensors are a copy, refreshed when a
// slot is loaded (a trace starts) or the prefill reads them.
type onnxBatch struct {
	sess    *ort.Session
	size    int
	vocab   int
	tok64   *ort.HostTensor[int64]
	in, out []*ort.HostTensor[float32]
	logits  *ort.HostTensor[float32]
	inVals  []ort.Value
	outVals []ort.Value
	stateIn []int // position of state k among the inputs
	stateOu []int // … and among the outputs
	per     []int // elements of state k per sequence
	// resident: the states live in the provider's memory (I/O binding),
	// two sets that alternate; no state is updated in place then.
	resident bool

	names     *bindNames
	bindings  [2]*ort.Binding // [0]: devIn → devOut, [1]: devOut → devIn
	dev       [2][]*ort.DeviceTensor
	parity    int  // which binding runs next; dev[parity] holds the current state
	hostStale bool // the device holds a newer state than in
	devStale  bool // in holds a newer state than the device
}

// bindNames are the step graph's names, for binding by name.
type bindNames struct {
	token, logits string
	in, out       []string
}

func (m *ONNXModel) newBatch(size int) (*onnxBatch, error) {
	if m.StepGraph == nil {
		return nil, errors.New("no step graph")
	}
	graph, err := m.StepGraph(size)
	if err != nil {
		return nil, fmt.Errorf("step graph for batch %d: %w", size, err)
	}
	ins, outs, err := ort.ModelIOInfo(graph)
	if err != nil {
		return nil, fmt.Errorf("reading the step graph's inputs and outputs: %w", err)
	}
	sess, err := ort.NewSession(graph, m.Session)
	if err != nil {
		return nil, err
	}
	b := &onnxBatch{sess: sess, size: size, vocab: m.Logits, resident: m.Session.UseBinding()}
	if err := b.bind(m.Signature, ins, outs); err != nil {
		sess.Close()
		b.destroy()
		return nil, err
	}
	if m.Session.UseBinding() {
		if err := b.makeResident(m.Signature); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

// makeResident allocates the two device state sets and the two bindings
// that alternate between them.
func (b *onnxBatch) makeResident(sig StepSignature) error {
	b.names = &bindNames{token: sig.Token, logits: sig.Logits}
	for _, sp := range sig.States {
		b.names.in = append(b.names.in, sp.In)
		b.names.out = append(b.names.out, sp.Out)
	}
	for p := range b.dev {
		for k, t := range b.in {
			d, err := b.sess.NewDeviceTensor(t.GetShape())
			if err != nil {
				return fmt.Errorf("state %q on the device: %w", b.names.in[k], err)
			}
			b.dev[p] = append(b.dev[p], d)
		}
	}
	for p := range b.bindings {
		bd, err := b.sess.NewBinding()
		if err != nil {
			return err
		}
		b.bindings[p] = bd
		if err := bd.Input(b.names.token, b.tok64); err != nil {
			return err
		}
		if err := bd.Output(b.names.logits, b.logits); err != nil {
			return err
		}
		for k := range b.in {
			if err := bd.InputDevice(b.names.in[k], b.dev[p][k]); err != nil {
				return err
			}
			if err := bd.OutputDevice(b.names.out[k], b.dev[1-p][k]); err != nil {
				return err
			}
		}
	}
	b.devStale = true
	return nil
}

// syncHost brings the current device state into the host tensors.
func (b *onnxBatch) syncHost() error {
	if b.names == nil || !b.hostStale {
		return nil
	}
	if err := b.sess.Download(b.dev[b.parity], b.in); err != nil {
		return fmt.Errorf("copying the recurrent state from %s: %w", b.sess.EP(), err)
	}
	b.hostStale = false
	return nil
}

func find(infos []ort.IOInfo, name string) int {
	for i, x := range infos {
		if x.Name == name {
			return i
		}
	}
	return -1
}

func (b *onnxBatch) bind(sig StepSignature, ins, outs []ort.IOInfo) error {
	b.inVals = make([]ort.Value, len(ins))
	b.outVals = make([]ort.Value, len(outs))
	ti := find(ins, sig.Token)
	if ti < 0 {
		return fmt.Errorf("step graph has no token input %q", sig.Token)
	}
	if ins[ti].DataType != ort.ElemInt64 {
		return fmt.Errorf("step graph's token input %q is not int64", sig.Token)
	}
	var err error
	if b.tok64, err = alignedTensor[int64](ins[ti].Dimensions); err != nil {
		return fmt.Errorf("token tensor: %w", err)
	}
	if int(ins[ti].Dimensions.FlattenedSize()) != b.size || ins[ti].Dimensions[0] != int64(b.size) {
		return fmt.Errorf("step graph's token input has shape %v, want batch %d", ins[ti].Dimensions, b.size)
	}
	b.inVals[ti] = b.tok64
	li := find(outs, sig.Logits)
	if li < 0 {
		return fmt.Errorf("step graph has no logits output %q", sig.Logits)
	}
	if outs[li].Dimensions.FlattenedSize() != int64(b.size*b.vocab) {
		return fmt.Errorf("step graph's logits have shape %v, want %d×%d", outs[li].Dimensions, b.size, b.vocab)
	}
	if b.logits, err = alignedTensor[float32](outs[li].Dimensions); err != nil {
		return fmt.Errorf("logits tensor: %w", err)
	}
	b.outVals[li] = b.logits
	for _, sp := range sig.States {
		i, o := find(ins, sp.In), find(outs, sp.Out)
		if i < 0 || o < 0 {
			return fmt.Errorf("step graph lacks state %q → %q", sp.In, sp.Out)
		}
		dims := ins[i].Dimensions
		if !slices.Equal(dims, outs[o].Dimensions) || len(dims) == 0 || dims[0] != int64(b.size) {
			return fmt.Errorf("state %q has shape %v in, %v out; want equal shapes with batch %d first", sp.In, dims, outs[o].Dimensions, b.size)
		}
		tin, err := alignedTensor[float32](dims)
		if err != nil {
			return fmt.Errorf("state %q: %w", sp.In, err)
		}
		b.in = append(b.in, tin)
		tout := tin
		if !sp.InPlace || b.resident {
			if tout, err = alignedTensor[float32](dims); err != nil {
				return fmt.Errorf("state %q: %w", sp.Out, err)
			}
		}
		b.out = append(b.out, tout)
		b.stateIn = append(b.stateIn, i)
		b.stateOu = append(b.stateOu, o)
		b.per = append(b.per, int(dims.FlattenedSize())/b.size)
		b.inVals[i], b.outVals[o] = tin, tout
	}
	for i, v := range b.inVals {
		if v == nil {
			return fmt.Errorf("step graph input %q is neither the token nor a state of the signature", ins[i].Name)
		}
	}
	for i, v := range b.outVals {
		if v == nil {
			return fmt.Errorf("step graph output %q is neither the logits nor a state of the signature", outs[i].Name)
		}
	}
	return nil
}

func (b *onnxBatch) Load(slot int, st State) error {
	if slot < 0 || slot >= b.size {
		return fmt.Errorf("slot %d outside a batch of %d", slot, b.size)
	}
	if len(st) != len(b.in) {
		return fmt.Errorf("state has %d tensors, the step graph %d", len(st), len(b.in))
	}
	for k := range b.in {
		if len(st[k]) != b.per[k] {
			return fmt.Errorf("state tensor %d has %d elements per sequence, the step graph %d", k, len(st[k]), b.per[k])
		}
	}
	if err := b.syncHost(); err != nil {
		return err
	}
	for k, t := range b.in {
		copy(t.GetData()[slot*b.per[k]:(slot+1)*b.per[k]], st[k])
	}
	b.devStale = b.names != nil
	return nil
}

func (b *onnxBatch) Save(slot int) (State, error) {
	if slot < 0 || slot >= b.size {
		return nil, fmt.Errorf("slot %d outside a batch of %d", slot, b.size)
	}
	if err := b.syncHost(); err != nil {
		return nil, err
	}
	st := make(State, len(b.in))
	for k, t := range b.in {
		st[k] = slices.Clone(t.GetData()[slot*b.per[k] : (slot+1)*b.per[k]])
	}
	return st, nil
}

func (b *onnxBatch) Step(tokens []int) ([]float32, error) {
	if len(tokens) != b.size {
		// A wrong count is the caller's bug; say so rather than misfeed.
		return nil, fmt.Errorf("%d tokens for a batch of %d", len(tokens), b.size)
	}
	td := b.tok64.GetData()
	for i, t := range tokens {
		td[i] = int64(t)
	}
	if b.names != nil {
		return b.stepResident()
	}
	if err := b.sess.RunValues(b.inVals, b.outVals); err != nil {
		return nil, err
	}
	b.in, b.out = b.out, b.in
	for k := range b.in {
		b.inVals[b.stateIn[k]] = b.in[k]
		b.outVals[b.stateOu[k]] = b.out[k]
	}
	return b.logits.GetData(), nil
}

func (b *onnxBatch) stepResident() ([]float32, error) {
	if b.devStale {
		if err := b.sess.Upload(b.in, b.dev[b.parity]); err != nil {
			return nil, fmt.Errorf("copying the recurrent state to %s: %w", b.sess.EP(), err)
		}
		b.devStale = false
	}
	bd := b.bindings[b.parity]
	// Bound host inputs are copied to the device when bound: bind this
	// step's tokens again (see ort.Binding).
	if err := bd.Input(b.names.token, b.tok64); err != nil {
		return nil, err
	}
	if err := bd.Run(); err != nil {
		return nil, err
	}
	b.parity = 1 - b.parity
	b.hostStale = true
	return b.logits.GetData(), nil
}

func (b *onnxBatch) destroy() {
	for p := range b.bindings {
		b.bindings[p].Close()
		for _, d := range b.dev[p] {
			d.Release()
		}
		b.bindings[p], b.dev[p] = nil, nil
	}
	for k, t := range b.in {
		t.Destroy()
		if k < len(b.out) && b.out[k] != t {
			b.out[k].Destroy()
		}
	}
	if b.tok64 != nil {
		b.tok64.Destroy()
	}
	if b.logits != nil {
		b.logits.Destroy()
	}
	b.in, b.out, b.tok64, b.logits = nil, nil, nil, nil
}

func (b *onnxBatch) Close() error {
	b.destroy() // device tensors first: the session owns their allocator
	return b.sess.Close()
}

// alignedTensor makes a zeroed tensor whose data starts on a 64-byte
// boundary. ONNX Runtime's CPU kernels take different vector paths for
// differently aligned buffers, so the same inputs round the same way in
// every run only if every run sees the same alignment (found by
// TestONNXForkedStateContinuesThePrompt: a 1-ulp difference between two
// sessions of one graph).
func alignedTensor[T float32 | int64](dims ort.Shape) (*ort.HostTensor[T], error) {
	return ort.HostTensorOf(dims, alignedSlice[T](int(dims.FlattenedSize())))
}

// alignedSlice returns n zeroed elements starting on a 64-byte boundary.
func alignedSlice[T float32 | int64](n int) []T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	buf := make([]T, n+64/size)
	off := 0
	for uintptr(unsafe.Pointer(&buf[off]))%64 != 0 {
		off++
	}
	return buf[off : off+n : off+n]
}
