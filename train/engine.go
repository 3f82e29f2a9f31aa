package train

import (
	"fmt"
	"math"

	"github.com/netssm/netssm/ort"
)

// buffer is a float32 tensor owned by Go and shared with ONNX Runtime.
type buffer = ort.HostTensor[float32]

func newBuffer(shape []int64, data []float32) (*buffer, error) {
	if data == nil {
		return ort.NewHostTensor[float32](shape...)
	}
	return ort.HostTensorOf(shape, data)
}

// Engine runs a train-step graph: it owns two sets of parameter, moment and
// state buffers and swaps them after every Run, so nothing is copied between
// steps; only the token window is written in and the loss read out.
//
// With I/O binding (under CUDA by default, see ort.SessionOptions.IOBinding)
// the two sets of parameters and moments are device tensors in the
// provider's memory, and the Go buffers are a host copy refreshed only when
// something reads them (checkpoints, validation, Param): a step then moves
// the token window and the recurrent states up and the loss down, nothing
// else. The states stay on the host, where rows that start a trace are
// zeroed; they are a few hundred KiB per row.
type Engine struct {
	sg      *StepGraph
	sess    *ort.Session
	batch   int
	ctx     int
	cur     map[string]*buffer // inputs of the next Run, by input name
	nxt     map[string]*buffer // outputs of the next Run, by the input they replace
	outOf   map[string]string  // input name → the output that replaces it
	inOf    map[string]string  // … and back
	ids     *ort.HostTensor[int64]
	targets *ort.HostTensor[int64]
	mask    *buffer
	lr      *buffer
	bc1     *buffer
	bc2     *buffer
	loss    *buffer
	norm    *buffer
	opt     AdamW
	steps   int64 // optimiser steps taken (AdamW's t)
	inputs  []ort.Value
	outputs []ort.Value

	// I/O binding (nil binding: off).
	binding   *ort.Binding
	devCur    map[string]*ort.DeviceTensor // parameters and moments, by input name
	devNxt    map[string]*ort.DeviceTensor
	resident  []string // the input names held on the device, in a fixed order
	hostStale bool     // the device holds newer values than cur
	devStale  bool     // cur holds newer values than the device
}

// NewEngine compiles the step graph and loads initial parameters (by name).
// Moments and recurrent states start at zero.
func NewEngine(sg *StepGraph, B, L int, params map[string][]float32, opt AdamW, so ort.SessionOptions) (*Engine, error) {
	sess, err := ort.NewSession(sg.Model, so)
	if err != nil {
		return nil, err
	}
	e := &Engine{sg: sg, sess: sess, batch: B, ctx: L, cur: map[string]*buffer{}, nxt: map[string]*buffer{}, outOf: map[string]string{}, inOf: map[string]string{}, opt: opt}
	fail := func(err error) (*Engine, error) { e.Close(); return nil, err }
	pair := func(in, out string, shape []int64, init []float32) error {
		a, err := newBuffer(shape, init)
		if err != nil {
			return fmt.Errorf("allocating %s %v: %w", in, shape, err)
		}
		b, err := newBuffer(shape, nil)
		if err != nil {
			return fmt.Errorf("allocating %s %v: %w", out, shape, err)
		}
		e.cur[in], e.nxt[in], e.outOf[in], e.inOf[out] = a, b, out, in
		return nil
	}
	for i, p := range sg.Params {
		data, ok := params[p]
		if !ok {
			return fail(fmt.Errorf("no initial value for parameter %s", p))
		}
		if int64(len(data)) != numel(sg.Shapes[i]) {
			return fail(fmt.Errorf("parameter %s: %d values for shape %v", p, len(data), sg.Shapes[i]))
		}
		m, v := MomentNames(p)
		for _, x := range []struct {
			in   string
			init []float32
		}{{p, append([]float32(nil), data...)}, {m, nil}, {v, nil}} {
			if err := pair(x.in, NextName(x.in), sg.Shapes[i], x.init); err != nil {
				return fail(err)
			}
		}
	}
	for i, s := range sg.StatesIn {
		if err := pair(s, sg.StatesOut[i], sg.StateDims[i], nil); err != nil {
			return fail(err)
		}
	}
	if e.ids, err = ort.NewHostTensor[int64](int64(B), int64(L)); err != nil {
		return fail(err)
	}
	if e.targets, err = ort.NewHostTensor[int64](int64(B), int64(L)); err != nil {
		return fail(err)
	}
	for _, x := range []struct {
		dst   **buffer
		shape []int64
	}{{&e.mask, []int64{int64(B), int64(L)}}, {&e.lr, []int64{1}}, {&e.bc1, []int64{1}}, {&e.bc2, []int64{1}}, {&e.loss, []int64{1}}, {&e.norm, []int64{1}}} {
		if *x.dst, err = newBuffer(x.shape, nil); err != nil {
			return fail(err)
		}
	}
	e.inputs = make([]ort.Value, len(sess.InputNames()))
	e.outputs = make([]ort.Value, len(sess.OutputNames()))
	if so.UseBinding() {
		if err := e.makeResident(); err != nil {
			return fail(err)
		}
	}
	return e, nil
}

// makeResident allocates the device copies of parameters and moments.
func (e *Engine) makeResident() error {
	var err error
	if e.binding, err = e.sess.NewBinding(); err != nil {
		return err
	}
	e.devCur, e.devNxt = map[string]*ort.DeviceTensor{}, map[string]*ort.DeviceTensor{}
	for i, p := range e.sg.Params {
		m, v := MomentNames(p)
		for _, name := range []string{p, m, v} {
			for _, set := range []map[string]*ort.DeviceTensor{e.devCur, e.devNxt} {
				if set[name], err = e.sess.NewDeviceTensor(e.sg.Shapes[i]); err != nil {
					return fmt.Errorf("%s on the device: %w", name, err)
				}
			}
			e.resident = append(e.resident, name)
			// Runs write this tensor on the device: the host keeps one copy.
			e.nxt[name].Destroy()
			delete(e.nxt, name)
		}
	}
	e.devStale = true
	return nil
}

// Close releases the session and every buffer.
func (e *Engine) Close() {
	e.binding.Close()
	for _, m := range []map[string]*ort.DeviceTensor{e.devCur, e.devNxt} {
		for _, d := range m {
			d.Release()
		}
	}
	for _, m := range []map[string]*buffer{e.cur, e.nxt} {
		for _, b := range m {
			b.Destroy()
		}
	}
	for _, v := range []ort.Value{e.ids, e.targets, e.mask, e.lr, e.bc1, e.bc2, e.loss, e.norm} {
		if v != nil && !isNilValue(v) {
			v.Destroy()
		}
	}
	if e.sess != nil {
		e.sess.Close()
	}
}

func isNilValue(v ort.Value) bool {
	switch x := v.(type) {
	case *ort.HostTensor[float32]:
		return x == nil
	case *ort.HostTensor[int64]:
		return x == nil
	}
	return false
}

// bind lays the current buffers out in the session's input and output
// order, or binds them (device tensors for parameters and moments).
func (e *Engine) bind() error {
	if e.binding != nil {
		return e.bindResident()
	}
	return e.bind0()
}

// bind0 lays the host buffers out in the session's order.
func (e *Engine) bind0() error {
	fixed := map[string]ort.Value{InIDs: e.ids, InTargets: e.targets, InMask: e.mask, InLR: e.lr, InBiasCor1: e.bc1, InBiasCor2: e.bc2}
	err := bindByName(e.inputs, e.sess.InputNames(), func(name string) (ort.Value, bool) {
		if v, ok := fixed[name]; ok {
			return v, true
		}
		b, ok := e.cur[name]
		return b, ok
	}, "train step graph input")
	if err != nil {
		return err
	}
	return bindByName(e.outputs, e.sess.OutputNames(), func(name string) (ort.Value, bool) {
		switch name {
		case OutLoss:
			return e.loss, true
		case OutNorm:
			return e.norm, true
		}
		in, ok := e.inOf[name]
		return e.nxt[in], ok // nil for a tensor held on the device (bound there)
	}, "train step graph output")
}

func (e *Engine) bindResident() error {
	if err := e.syncDevice(); err != nil {
		return err
	}
	if err := e.bind0(); err != nil { // the host values, in session order
		return err
	}
	b := e.binding
	b.Clear()
	for i, name := range e.sess.InputNames() {
		var err error
		if d, ok := e.devCur[name]; ok {
			err = b.InputDevice(name, d)
		} else {
			err = b.Input(name, e.inputs[i])
		}
		if err != nil {
			return err
		}
	}
	for i, name := range e.sess.OutputNames() {
		var err error
		if d, ok := e.devNxt[e.inOf[name]]; ok {
			err = b.OutputDevice(name, d)
		} else {
			err = b.Output(name, e.outputs[i])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ErrNonFinite reports a NaN or infinite loss or gradient norm.
var ErrNonFinite = fmt.Errorf("non-finite loss")

// Step runs one optimiser step on a window with learning rate lr. Rows the
// window marks Reset start from a zero recurrent state.
func (e *Engine) Step(w *Window, lr float64) (loss, norm float64, err error) {
	copy(e.ids.GetData(), w.Inputs)
	copy(e.targets.GetData(), w.Targets)
	copy(e.mask.GetData(), w.Mask)
	e.resetRows(w.Reset)
	t := float64(e.steps + 1)
	e.lr.GetData()[0] = float32(lr)
	e.bc1.GetData()[0] = float32(1 - math.Pow(e.opt.Beta1, t))
	e.bc2.GetData()[0] = float32(1 - math.Pow(e.opt.Beta2, t))
	if err := e.bind(); err != nil {
		return 0, 0, err
	}
	if e.binding != nil {
		err = e.binding.Run()
	} else {
		err = e.sess.RunValues(e.inputs, e.outputs)
	}
	if err != nil {
		return 0, 0, err
	}
	loss, norm = float64(e.loss.GetData()[0]), float64(e.norm.GetData()[0])
	if math.IsNaN(loss) || math.IsInf(loss, 0) || math.IsNaN(norm) || math.IsInf(norm, 0) {
		// Keep the previous parameters: do not swap in the poisoned ones.
		return loss, norm, fmt.Errorf("%w: loss %v, gradient norm %v", ErrNonFinite, loss, norm)
	}
	if e.binding != nil {
		for _, s := range e.sg.StatesIn {
			e.cur[s], e.nxt[s] = e.nxt[s], e.cur[s]
		}
		e.devCur, e.devNxt = e.devNxt, e.devCur
		e.hostStale = true
	} else {
		e.cur, e.nxt = e.nxt, e.cur
	}
	// After the swap the maps' keys still name inputs: cur[in] now holds the
	// output that replaces in.
	e.steps++
	return loss, norm, nil
}

// syncHost copies the device's parameters and moments into the host
// buffers if they are newer.
func (e *Engine) syncHost() error {
	if e.binding == nil || !e.hostStale {
		return nil
	}
	if err := e.sess.Download(e.devList(e.devCur), e.hostList()); err != nil {
		return fmt.Errorf("copying parameters from %s: %w", e.sess.EP(), err)
	}
	e.hostStale = false
	return nil
}

// syncDevice copies the host buffers to the device if they are newer.
func (e *Engine) syncDevice() error {
	if e.binding == nil || !e.devStale {
		return nil
	}
	if err := e.sess.Upload(e.hostList(), e.devList(e.devCur)); err != nil {
		return fmt.Errorf("copying parameters to %s: %w", e.sess.EP(), err)
	}
	e.devStale = false
	return nil
}

func (e *Engine) devList(m map[string]*ort.DeviceTensor) []*ort.DeviceTensor {
	out := make([]*ort.DeviceTensor, len(e.resident))
	for i, name := range e.resident {
		out[i] = m[name]
	}
	return out
}

func (e *Engine) hostList() []*buffer {
	out := make([]*buffer, len(e.resident))
	for i, name := range e.resident {
		out[i] = e.cur[name]
	}
	return out
}

// resetRows zeroes the recurrent states of the rows that start a trace.
func (e *Engine) resetRows(reset []bool) {
	for _, s := range e.sg.StatesIn {
		data := e.cur[s].GetData()
		per := len(data) / e.batch
		for r, z := range reset {
			if z {
				clear(data[r*per : (r+1)*per])
			}
		}
	}
}

// Steps is the number of optimiser steps taken.
func (e *Engine) Steps() int64 { return e.steps }

// Snapshot copies out every parameter, moment and state (for checkpoints).
func (e *Engine) Snapshot() (entries []TensorEntry, data [][]float32, err error) {
	if err := e.syncHost(); err != nil {
		return nil, nil, err
	}
	add := func(name string, shape []int64) {
		entries = append(entries, TensorEntry{Name: name, Shape: shape})
		data = append(data, append([]float32(nil), e.cur[name].GetData()...))
	}
	for i, p := range e.sg.Params {
		m, v := MomentNames(p)
		add(p, e.sg.Shapes[i])
		add(m, e.sg.Shapes[i])
		add(v, e.sg.Shapes[i])
	}
	for i, s := range e.sg.StatesIn {
		add(s, e.sg.StateDims[i])
	}
	return entries, data, nil
}

// Restore loads a checkpoint's tensors and step count.
func (e *Engine) Restore(c *Checkpoint) error {
	for name, b := range e.cur {
		d, ok := c.Tensor(name)
		if !ok {
			return fmt.Errorf("checkpoint lacks %s", name)
		}
		if len(d) != len(b.GetData()) {
			return fmt.Errorf("checkpoint's %s has %d values, the model needs %d (was it made with another preset?)", name, len(d), len(b.GetData()))
		}
		copy(b.GetData(), d)
	}
	e.steps = c.Header.Step
	e.hostStale, e.devStale = false, e.binding != nil
	return nil
}

// Param returns the current value of a parameter (not a copy; with I/O
// binding it is refreshed from the device first).
func (e *Engine) Param(name string) ([]float32, error) {
	if err := e.syncHost(); err != nil {
		return nil, err
	}
	return e.cur[name].GetData(), nil
}

// paramTensors exposes current parameter buffers to the evaluator.
func (e *Engine) paramTensors() (map[string]*buffer, error) {
	if err := e.syncHost(); err != nil {
		return nil, err
	}
	m := make(map[string]*buffer, len(e.sg.Params))
	for _, p := range e.sg.Params {
		m[p] = e.cur[p]
	}
	return m, nil
}
