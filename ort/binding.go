package ort

/*
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

// The few entries of ONNX Runtime's C API (OrtApi, version 24) that I/O
// binding needs and onnxruntime_go does not expose. OrtApi is a table of
// function pointers that only ever grows at its end, so an entry's slot
// number is fixed; the slots below are those of onnxruntime_c_api.h
// (ORT_API_VERSION 24). Every handle is opaque here.
enum {
	slotGetErrorMessage = 2,
	slotCreateTensorAsOrtValue = 48,
	slotCreateMemoryInfo = 68,
	slotReleaseStatus = 93,
	slotReleaseMemoryInfo = 94,
	slotReleaseValue = 96,
	slotCreateAllocator = 131,
	slotReleaseAllocator = 132,
	slotRunWithBinding = 133,
	slotCreateIoBinding = 134,
	slotReleaseIoBinding = 135,
	slotBindInput = 136,
	slotBindOutput = 137,
	slotClearBoundInputs = 141,
	slotClearBoundOutputs = 142,
};

typedef void *status_t;
typedef struct { const void *(*GetApi)(uint32_t version); const char *(*GetVersionString)(void); } api_base_t;

static void *const *api;

static int netssm_load_api(const char *path) {
	void *h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
	if (!h) return 1;
	const api_base_t *(*get)(void) = (const api_base_t *(*)(void))dlsym(h, "OrtGetApiBase");
	if (!get) return 2;
	api = (void *const *)get()->GetApi(24);
	return api ? 0 : 3;
}

// netssm_error turns a status into a malloc'd message (NULL for success).
static char *netssm_error(status_t st) {
	if (!st) return NULL;
	const char *msg = ((const char *(*)(status_t))api[slotGetErrorMessage])(st);
	size_t n = 0;
	while (msg[n]) n++;
	char *out = malloc(n + 1);
	for (size_t i = 0; i <= n; i++) out[i] = msg[i];
	((void (*)(status_t))api[slotReleaseStatus])(st);
	return out;
}

static char *netssm_memory_info(const char *name, int device, void **out) {
	// OrtDeviceAllocator = 0, OrtMemTypeDefault = 0
	return netssm_error(((status_t (*)(const char *, int, int, int, void **))api[slotCreateMemoryInfo])(name, 0, device, 0, out));
}
static void netssm_release_memory_info(void *m) { ((void (*)(void *))api[slotReleaseMemoryInfo])(m); }

static char *netssm_allocator(void *session, void *mem, void **out) {
	return netssm_error(((status_t (*)(void *, void *, void **))api[slotCreateAllocator])(session, mem, out));
}
static void netssm_release_allocator(void *a) { ((void (*)(void *))api[slotReleaseAllocator])(a); }

static char *netssm_tensor(void *alloc, const int64_t *shape, size_t rank, int type, void **out) {
	return netssm_error(((status_t (*)(void *, const int64_t *, size_t, int, void **))api[slotCreateTensorAsOrtValue])(alloc, shape, rank, type, out));
}
static void netssm_release_value(void *v) { ((void (*)(void *))api[slotReleaseValue])(v); }

static char *netssm_binding(void *session, void **out) {
	return netssm_error(((status_t (*)(void *, void **))api[slotCreateIoBinding])(session, out));
}
static void netssm_release_binding(void *b) { ((void (*)(void *))api[slotReleaseIoBinding])(b); }
static char *netssm_bind_input(void *b, const char *name, void *v) {
	return netssm_error(((status_t (*)(void *, const char *, void *))api[slotBindInput])(b, name, v));
}
static char *netssm_bind_output(void *b, const char *name, void *v) {
	return netssm_error(((status_t (*)(void *, const char *, void *))api[slotBindOutput])(b, name, v));
}
static void netssm_clear_binding(void *b) {
	((void (*)(void *))api[slotClearBoundInputs])(b);
	((void (*)(void *))api[slotClearBoundOutputs])(b);
}
static char *netssm_run_binding(void *session, void *b) {
	return netssm_error(((status_t (*)(void *, void *, void *))api[slotRunWithBinding])(session, NULL, b));
}
*/
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"unsafe"

	ortgo "github.com/yalue/onnxruntime_go"
)

// I/O binding keeps tensors where a session computes them. Under CUDA a
// DeviceTensor lives in GPU memory: a Binding feeds it to one Run and lets
// the next Run read it back, so a training loop's parameters and moments, or
// a decoder's recurrent states, cross PCIe only when Go asks for them. On
// the CPU provider the same calls work on host memory, so the code path is
// tested where no GPU is.

var (
	apiOnce sync.Once
	apiErr  error
)

func loadAPI() error {
	apiOnce.Do(func() {
		initMu.Lock()
		info := initInfo
		initMu.Unlock()
		if info == nil {
			apiErr = errors.New("ONNX Runtime is not initialised (call ort.Init first)")
			return
		}
		if err := checkOrtgoLayout(); err != nil {
			apiErr = err
			return
		}
		p := C.CString(info.Path)
		defer C.free(unsafe.Pointer(p))
		if rc := C.netssm_load_api(p); rc != 0 {
			apiErr = fmt.Errorf("I/O binding: cannot reach the C API of %s (step %d)", info.Path, int(rc))
		}
	})
	return apiErr
}

// checkOrtgoLayout confirms the private layout this file reads the C
// handles from (onnxruntime_go v1.27: DynamicAdvancedSession{s
// *AdvancedSession{ortSession, …}}, ValueInternalData{ortValue}), so a
// different version fails with an error instead of reading garbage.
func checkOrtgoLayout() error {
	ok := func(t reflect.Type, field string) bool {
		return t.Kind() == reflect.Struct && t.NumField() > 0 && t.Field(0).Name == field && t.Field(0).Offset == 0 && t.Field(0).Type.Kind() == reflect.Pointer
	}
	if !ok(reflect.TypeFor[ortgo.DynamicAdvancedSession](), "s") || !ok(reflect.TypeFor[ortgo.AdvancedSession](), "ortSession") || !ok(reflect.TypeFor[ortgo.ValueInternalData](), "ortValue") || !ok(reflect.TypeFor[ortgo.SessionOptions](), "o") {
		return errors.New("I/O binding: this onnxruntime_go has another internal layout than v1.27.0, which netssm pins")
	}
	return nil
}

func cError(msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return errors.New(C.GoString(msg))
}

// sessionHandle is the OrtSession* behind an onnxruntime_go session.
func (s *Session) sessionHandle() unsafe.Pointer {
	adv := *(*unsafe.Pointer)(unsafe.Pointer(s.s))
	return *(*unsafe.Pointer)(adv)
}

// valueHandle is the OrtValue* behind an onnxruntime_go value.
func valueHandle(v ortgo.Value) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(v.GetInternals()))
}

// DeviceTensor is a float32 tensor allocated by ONNX Runtime in the memory
// of the session's execution provider (GPU memory under CUDA). Go cannot
// read it directly: Session.Download copies it out.
type DeviceTensor struct {
	v     unsafe.Pointer // OrtValue*
	Shape []int64
}

// Len is the number of elements.
func (d *DeviceTensor) Len() int { return int(numel(d.Shape)) }

// Release frees the tensor; releasing twice is harmless.
func (d *DeviceTensor) Release() {
	if d != nil && d.v != nil {
		C.netssm_release_value(d.v)
		d.v = nil
	}
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, x := range shape {
		n *= x
	}
	return n
}

// deviceAllocator is the session's allocator for its provider's memory.
type deviceAllocator struct {
	mem   unsafe.Pointer // OrtMemoryInfo*
	alloc unsafe.Pointer // OrtAllocator*
}

func (s *Session) allocator() (*deviceAllocator, error) {
	if s.dev != nil {
		return s.dev, nil
	}
	if err := loadAPI(); err != nil {
		return nil, err
	}
	name := "Cpu"
	if s.ep == "cuda" {
		name = "Cuda"
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var a deviceAllocator
	if err := cError(C.netssm_memory_info(cname, C.int(s.device), &a.mem)); err != nil {
		return nil, fmt.Errorf("I/O binding: memory info for %s: %w", name, err)
	}
	if err := cError(C.netssm_allocator(s.sessionHandle(), a.mem, &a.alloc)); err != nil {
		C.netssm_release_memory_info(a.mem)
		return nil, fmt.Errorf("I/O binding: the session's %s allocator: %w", name, err)
	}
	s.dev = &a
	return s.dev, nil
}

func (a *deviceAllocator) release() {
	C.netssm_release_allocator(a.alloc)
	C.netssm_release_memory_info(a.mem)
}

// NewDeviceTensor allocates an uninitialised float32 tensor in the
// session's provider memory. It must be released before the session closes.
func (s *Session) NewDeviceTensor(shape []int64) (*DeviceTensor, error) {
	a, err := s.allocator()
	if err != nil {
		return nil, err
	}
	dims := append([]int64{0}, shape...)[1:] // a C-safe copy
	var p *C.int64_t
	if len(dims) > 0 {
		p = (*C.int64_t)(unsafe.Pointer(&dims[0]))
	}
	d := &DeviceTensor{Shape: append([]int64(nil), shape...)}
	const float32Type = 1 // ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
	if err := cError(C.netssm_tensor(a.alloc, p, C.size_t(len(dims)), float32Type, &d.v)); err != nil {
		return nil, fmt.Errorf("allocating a %v float32 tensor on %s: %w", shape, epName(s.ep), err)
	}
	return d, nil
}

// Binding is an ONNX Runtime I/O binding on a session: each input and
// output is bound to a host value or to a DeviceTensor, then Run computes
// straight into the bound outputs.
//
// ONNX Runtime copies a host input to the provider's memory when it is
// bound, not when Run starts (under CUDA; on the CPU provider it reads the
// host memory at Run): a host input changed after binding must be bound
// again before the next Run. Binding a name again replaces its value.
type Binding struct {
	s     *Session
	b     unsafe.Pointer // OrtIoBinding*
	names map[string]*C.char
	keep  map[string]any // the values bound for the next Run, kept alive
}

// NewBinding creates an empty binding on the session.
func (s *Session) NewBinding() (*Binding, error) {
	if err := loadAPI(); err != nil {
		return nil, err
	}
	b := &Binding{s: s, names: map[string]*C.char{}, keep: map[string]any{}}
	if err := cError(C.netssm_binding(s.sessionHandle(), &b.b)); err != nil {
		return nil, fmt.Errorf("I/O binding: %w", err)
	}
	return b, nil
}

func (b *Binding) cname(name string) *C.char {
	p, ok := b.names[name]
	if !ok {
		p = C.CString(name)
		b.names[name] = p
	}
	return p
}

// Clear unbinds every input and output.
func (b *Binding) Clear() {
	C.netssm_clear_binding(b.b)
	clear(b.keep)
}

// Input binds a host value to an input.
func (b *Binding) Input(name string, v ortgo.Value) error {
	return b.bind(false, name, valueHandle(v), v, "")
}

// InputDevice binds a device tensor to an input.
func (b *Binding) InputDevice(name string, d *DeviceTensor) error {
	return b.bind(false, name, d.v, d, " to the "+epName(b.s.ep)+" tensor")
}

// Output binds a host value to an output: Run copies the result into it.
func (b *Binding) Output(name string, v ortgo.Value) error {
	return b.bind(true, name, valueHandle(v), v, "")
}

// OutputDevice binds a device tensor to an output: Run writes into it.
func (b *Binding) OutputDevice(name string, d *DeviceTensor) error {
	return b.bind(true, name, d.v, d, " to the "+epName(b.s.ep)+" tensor")
}

// bind binds the OrtValue v (owned by keep, which stays referenced until
// the name is bound again or the binding is cleared).
func (b *Binding) bind(output bool, name string, v unsafe.Pointer, keep any, where string) error {
	what, key := "input", "in:"+name
	if output {
		what, key = "output", "out:"+name
	}
	b.keep[key] = keep
	var msg *C.char
	if output {
		msg = C.netssm_bind_output(b.b, b.cname(name), v)
	} else {
		msg = C.netssm_bind_input(b.b, b.cname(name), v)
	}
	if err := cError(msg); err != nil {
		return fmt.Errorf("binding %s %q%s: %w", what, name, where, err)
	}
	return nil
}

// Run runs the session on the bound values. Host outputs hold their
// results when it returns.
func (b *Binding) Run() error {
	if err := cError(C.netssm_run_binding(b.s.sessionHandle(), b.b)); err != nil {
		dumpModel(b.s.model, "run")
		return fmt.Errorf("running the graph (I/O binding): %w", err)
	}
	return nil
}

// Close releases the binding (not the values bound to it).
func (b *Binding) Close() {
	if b == nil || b.b == nil {
		return
	}
	C.netssm_release_binding(b.b)
	b.b = nil
	for _, p := range b.names {
		C.free(unsafe.Pointer(p))
	}
	b.names = nil
	b.keep = nil
}
