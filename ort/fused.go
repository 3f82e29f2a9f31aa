package ort

/*
#cgo CFLAGS: -O3
#cgo linux LDFLAGS: -ldl -lm -lpthread
#include <stdlib.h>
#include "fused_kernels.h"

char *nss_fused_register(const char *path, void *options);
void nss_set_session_threads(int n);
void nss_pool_count(int parts, size_t total, int *counts);
const char *nss_fused_op_name(int i);
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	ortgo "github.com/yalue/onnxruntime_go"
)

// FusedDomain is the ONNX operator domain of netssm's own CPU kernels
// (fused_kernels.c, compiled into the binary): SSDScan, the chunked SSD scan
// of one layer (y and the final state from x, dt, A, Bm, Cm and the carried
// state, attribute chunk); SSDScanGrad, its backward; MixerStep, the
// recurrent part of one mixer decoding step (conv window, SSM state update,
// gated RMSNorm); BlockStep, a whole residual block's decoding step around
// it (RMSNorm, in_proj, MixerStep, out_proj, residual); ConvSilu, RMSNorm,
// GatedRMSNorm (a mixer's D·x skip and gated norm) and SoftmaxCrossEntropy
// (the loss), each with its gradient op (docs/kernels.md lists them).
// Sessions whose model uses the domain get it registered.
const FusedDomain = "ai.netssm"

// BlockPanel is the number of output columns in a panel of the packed
// weights that BlockStep's kernel reads (graph.BlockPanels packs them).
const BlockPanel = C.NSS_BLOCK_PANEL

// FusedOps lists the op types of FusedDomain.
func FusedOps() []string {
	var ops []string
	for i := 0; ; i++ {
		p := C.nss_fused_op_name(C.int(i))
		if p == nil {
			return ops
		}
		ops = append(ops, C.GoString(p))
	}
}

// usesFused reports whether a serialized model names FusedDomain (its opset
// import does when any node uses it).
func usesFused(model []byte) bool { return bytes.Contains(model, []byte(FusedDomain)) }

// registerFused adds FusedDomain to the session options.
func registerFused(opts *ortgo.SessionOptions) error {
	if err := checkOrtgoLayout(); err != nil {
		return err
	}
	initMu.Lock()
	info := initInfo
	initMu.Unlock()
	if info == nil {
		return errors.New("ONNX Runtime is not initialised (call ort.Init first)")
	}
	path := C.CString(info.Path)
	defer C.free(unsafe.Pointer(path))
	handle := *(*unsafe.Pointer)(unsafe.Pointer(opts)) // OrtSessionOptions*
	if err := cError(C.nss_fused_register(path, handle)); err != nil {
		return fmt.Errorf("registering the %s custom ops: %w", FusedDomain, err)
	}
	return nil
}

// usesOwnThreads reports whether a serialized model has BlockStep nodes,
// whose kernels run on netssm's own worker threads (fused_pool.c) instead of
// ONNX Runtime's intra-op pool: a session of such a graph gives ONNX Runtime
// one thread and the kernels the session's count, so that it never runs
// more threads than it was given.
func usesOwnThreads(model []byte) bool { return bytes.Contains(model, []byte("BlockStep")) }

// sessionMu keeps the thread count that kernels read while ONNX Runtime
// creates them (during the session's creation) that of their session.
var sessionMu sync.Mutex

// createSession creates an ONNX Runtime session whose fused kernels use
// threads threads.
func createSession(model []byte, ins, outs []string, opts *ortgo.SessionOptions, threads int) (*ortgo.DynamicAdvancedSession, error) {
	if !usesFused(model) {
		return ortgo.NewDynamicAdvancedSessionWithONNXData(model, ins, outs, opts)
	}
	sessionMu.Lock()
	defer sessionMu.Unlock()
	C.nss_set_session_threads(C.int(threads))
	return ortgo.NewDynamicAdvancedSessionWithONNXData(model, ins, outs, opts)
}

// poolCounts runs total tasks on parts threads of the kernels' worker pool
// and returns how many times each task ran (for the tests).
func poolCounts(parts, total int) []int32 {
	counts := make([]C.int, total+1) // one more, so that the slice is never empty
	C.nss_pool_count(C.int(parts), C.size_t(total), &counts[0])
	out := make([]int32, total)
	for i := range out {
		out[i] = int32(counts[i])
	}
	return out
}

// SSDDims are the sizes of one SSD scan: batch B, length L, heads H, head
// dimension P, state size N, chunk length Q.
type SSDDims struct{ B, L, H, P, N, Q int }

func (d SSDDims) c() C.nss_dims {
	return C.nss_dims{B: C.int(d.B), L: C.int(d.L), H: C.int(d.H), P: C.int(d.P), N: C.int(d.N), Q: C.int(d.Q)}
}

func (d SSDDims) check(x, dt, A, bm, cm, h0 []float64) error {
	if d.B < 1 || d.L < 1 || d.H < 1 || d.P < 1 || d.N < 1 || d.Q < 1 {
		return fmt.Errorf("SSD scan: sizes %+v must be positive", d)
	}
	if len(x) != d.B*d.L*d.H*d.P || len(dt) != d.B*d.L*d.H || len(A) != d.H || len(bm) != d.B*d.L*d.N || len(cm) != len(bm) || len(h0) != d.B*d.H*d.P*d.N {
		return fmt.Errorf("SSD scan: input lengths do not match sizes %+v", d)
	}
	return nil
}

// ChunkStates is the number of values of the states entering the chunks,
// B·H·⌈L/Q⌉·N·P: SSDScan's third output.
func (d SSDDims) ChunkStates() int { return d.B * d.H * ((d.L + d.Q - 1) / d.Q) * d.N * d.P }

// SSDScan64 runs the SSDScan kernel in float64 on the calling thread: y
// (B,L,H,P) without the D·x skip, the final state (B,H,P,N) and the states
// entering the chunks (B,H,⌈L/Q⌉,N,P), which SSDScanGrad64 may take. It is
// the same C source as the float32 op, for checks against finite
// differences.
func SSDScan64(d SSDDims, x, dt, A, bm, cm, h0 []float64) (y, final, states []float64, err error) {
	if err := d.check(x, dt, A, bm, cm, h0); err != nil {
		return nil, nil, nil, err
	}
	y, final, states = make([]float64, len(x)), make([]float64, len(h0)), make([]float64, d.ChunkStates())
	dc := d.c()
	if C.nss_ssd_fwd_f64(&dc, f64(x), f64(dt), f64(A), f64(bm), f64(cm), f64(h0), f64(y), f64(final), f64(states),
		C.nss_par(C.nss_serial), nil) != 0 {
		return nil, nil, nil, errors.New("SSD scan: out of memory")
	}
	return y, final, states, nil
}

// SSDVectorBits reports the width in bits of the vectors the SSD kernels'
// matrix products use: 512 on a CPU with AVX-512 (x86-64-v4), else 256.
// With bits 256 or 512 it first makes them use that width, 512 only where
// the CPU has it. It is for tests, which run the kernels at every width
// the CPU has; the choice holds for the whole process.
func SSDVectorBits(bits int) int { return int(C.nss_ssd_vector_bits(C.int(bits))) }

// SSDGrads are the gradients SSDScanGrad64 returns.
type SSDGrads struct{ X, DT, A, B, C, H0 []float64 }

// SSDScanGrad64 runs the SSDScanGrad kernel in float64: the gradients of
// SSDScan64's outputs with respect to its inputs, given dy and dfinal.
// states are SSDScan64's chunk states of the same inputs, or nil: then
// the kernel recomputes them; y is SSDScan64's y, or nil: then the kernel
// forms the terms of dy·y one by one.
func SSDScanGrad64(d SSDDims, x, dt, A, bm, cm, h0, dy, dfinal, states, y []float64) (SSDGrads, error) {
	if err := d.check(x, dt, A, bm, cm, h0); err != nil {
		return SSDGrads{}, err
	}
	if len(dy) != len(x) || len(dfinal) != len(h0) {
		return SSDGrads{}, errors.New("SSD scan gradient: dy or dfinal does not match")
	}
	var st *C.double // nil: recompute
	if states != nil {
		if len(states) != d.ChunkStates() {
			return SSDGrads{}, fmt.Errorf("SSD scan gradient: %d chunk-state values, want %d", len(states), d.ChunkStates())
		}
		st = f64(states)
	}
	var yf *C.double // nil: form its terms
	if y != nil {
		if len(y) != len(x) {
			return SSDGrads{}, errors.New("SSD scan gradient: y does not match x")
		}
		yf = f64(y)
	}
	g := SSDGrads{make([]float64, len(x)), make([]float64, len(dt)), make([]float64, len(A)), make([]float64, len(bm)), make([]float64, len(cm)), make([]float64, len(h0))}
	dc := d.c()
	if C.nss_ssd_bwd_f64(&dc, f64(x), f64(dt), f64(A), f64(bm), f64(cm), f64(h0), st, yf, f64(dy), f64(dfinal),
		f64(g.X), f64(g.DT), f64(g.A), f64(g.B), f64(g.C), f64(g.H0), C.nss_par(C.nss_serial), nil) != 0 {
		return SSDGrads{}, errors.New("SSD scan gradient: out of memory")
	}
	return g, nil
}

// f64 passes a Go slice to C for the duration of a call (cgo pins it).
func f64(s []float64) *C.double { return (*C.double)(unsafe.Pointer(unsafe.SliceData(s))) }
