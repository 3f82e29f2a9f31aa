// ONNX Runtime glue of netssm's custom-op domain "ai.netssm": the op
// descriptors that ONNX Runtime's C API (version 24) reads, their kernels'
// Compute, and the domain's registration on a session's options.
//
// ONNX Runtime describes a custom op with a struct of function pointers
// (OrtCustomOp in onnxruntime_c_api.h) that only ever grows at its end; the
// struct below is that layout for ORT_API_VERSION 24, written from the
// documented C API, with netssm's own fields after it. OrtApi entries are
// called through their fixed slot numbers, as in binding.go.

#include <dlfcn.h>
#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fused_kernels.h"

enum {
	slotCreateStatus = 0,
	slotGetErrorMessage = 2,
	slotCreateCustomOpDomain = 26,
	slotCustomOpDomainAdd = 27,
	slotAddCustomOpDomain = 28,
	slotGetTensorMutableData = 51,
	slotGetDimensionsCount = 61,
	slotGetDimensions = 62,
	slotGetTensorTypeAndShape = 65,
	slotKernelContextGetInputCount = 88,
	slotKernelContextGetInput = 90,
	slotKernelContextGetOutput = 91,
	slotReleaseStatus = 93,
	slotReleaseTensorTypeAndShapeInfo = 99,
	slotKernelContextParallelFor = 274,
};

enum { ortFloat = 1, ortInt64 = 7, ortFail = 1 /* ORT_FAIL */, ortInvalidArgument = 2 };

typedef void *status_t;

// ort_op is OrtCustomOp of API version 24: every member up to
// ReleaseAliasMap, in order. Handles are opaque; enums are int.
struct ort_op {
	uint32_t version;
	void *(*CreateKernel)(const struct ort_op *, const void *api, const void *info);
	const char *(*GetName)(const struct ort_op *);
	const char *(*GetExecutionProviderType)(const struct ort_op *);
	int (*GetInputType)(const struct ort_op *, size_t);
	size_t (*GetInputTypeCount)(const struct ort_op *);
	int (*GetOutputType)(const struct ort_op *, size_t);
	size_t (*GetOutputTypeCount)(const struct ort_op *);
	void (*KernelCompute)(void *kernel, void *ctx);
	void (*KernelDestroy)(void *kernel);
	int (*GetInputCharacteristic)(const struct ort_op *, size_t);
	int (*GetOutputCharacteristic)(const struct ort_op *, size_t);
	int (*GetInputMemoryType)(const struct ort_op *, size_t);
	int (*GetVariadicInputMinArity)(const struct ort_op *);
	int (*GetVariadicInputHomogeneity)(const struct ort_op *);
	int (*GetVariadicOutputMinArity)(const struct ort_op *);
	int (*GetVariadicOutputHomogeneity)(const struct ort_op *);
	status_t (*CreateKernelV2)(const struct ort_op *, const void *api, const void *info, void **kernel);
	status_t (*KernelComputeV2)(void *kernel, void *ctx);
	status_t (*InferOutputShapeFn)(const struct ort_op *, void *ctx);
	int (*GetStartVersion)(const struct ort_op *);
	int (*GetEndVersion)(const struct ort_op *);
	size_t (*GetMayInplace)(int **in, int **out);
	void (*ReleaseMayInplace)(int *in, int *out);
	size_t (*GetAliasMap)(int **in, int **out);
	void (*ReleaseAliasMap)(int *in, int *out);
};

_Static_assert(offsetof(struct ort_op, CreateKernelV2) == 17 * sizeof(void *), "OrtCustomOp layout");
_Static_assert(offsetof(struct ort_op, ReleaseAliasMap) == 25 * sizeof(void *), "OrtCustomOp layout");

// nss_op is one op of the domain: ORT's part first, then netssm's.
typedef struct nss_op {
	struct ort_op ort;
	const char *name;
	int inputs, outputs;
	int chunked; // reads the int attribute "chunk"
	int normed;  // reads the float attribute "eps"
	int int64s;  // bit i set: input i is int64 (every other input and output is float)
	status_t (*compute)(void *kernel, void *ctx);
} nss_op;

static void *const *api;

#define CALL(slot, type) ((type)api[slot])

static status_t make_status(int code, const char *msg) {
	return CALL(slotCreateStatus, status_t (*)(int, const char *))(code, msg);
}

static const char *op_name(const struct ort_op *op) { return ((const nss_op *)op)->name; }
static const char *op_ep(const struct ort_op *op) { (void)op; return NULL; }
static int op_float(const struct ort_op *op, size_t i) { (void)op; (void)i; return ortFloat; }
static int op_in_type(const struct ort_op *op, size_t i) {
	return i < 8 && ((const nss_op *)op)->int64s >> i & 1 ? ortInt64 : ortFloat;
}
static size_t op_inputs(const struct ort_op *op) { return (size_t)((const nss_op *)op)->inputs; }
static size_t op_outputs(const struct ort_op *op) { return (size_t)((const nss_op *)op)->outputs; }
static int op_required(const struct ort_op *op, size_t i) { (void)op; (void)i; return 0; }
static int op_mem_default(const struct ort_op *op, size_t i) { (void)op; (void)i; return 0; }
static int op_one(const struct ort_op *op) { (void)op; return 1; }
static int op_start(const struct ort_op *op) { (void)op; return 1; }
static int op_end(const struct ort_op *op) { (void)op; return INT_MAX; }
static size_t op_no_pairs(int **in, int **out) { *in = NULL; *out = NULL; return 0; }
static void op_release_pairs(int *in, int *out) { (void)in; (void)out; }

// kernel is one node's kernel: its op, the node's attributes, and the
// threads of the session it was created for.
typedef struct {
	const nss_op *op;
	int64_t chunk;
	float eps;
	int threads;
} kernel;

// session_threads is the thread count of the session being created
// (package ort sets it around the session's creation, when ONNX Runtime
// creates the kernels).
static _Atomic int session_threads = 1;
void nss_set_session_threads(int n) { session_threads = n > 0 ? n : 1; }

enum { slotKernelInfoGetAttributeFloat = 85, slotKernelInfoGetAttributeInt64 = 86 };

static status_t op_create(const struct ort_op *op, const void *a, const void *info, void **out) {
	(void)a;
	kernel *k = calloc(1, sizeof *k);
	if (!k) return make_status(ortFail, "ai.netssm: out of memory");
	k->op = (const nss_op *)op;
	k->threads = session_threads;
	if (k->op->chunked) {
		status_t st = CALL(slotKernelInfoGetAttributeInt64, status_t (*)(const void *, const char *, int64_t *))(info, "chunk", &k->chunk);
		if (!st && k->chunk < 1) st = make_status(ortInvalidArgument, "ai.netssm: attribute chunk must be positive");
		if (st) {
			free(k);
			return st;
		}
	}
	if (k->op->normed) {
		status_t st = CALL(slotKernelInfoGetAttributeFloat, status_t (*)(const void *, const char *, float *))(info, "eps", &k->eps);
		if (!st && !(k->eps > 0)) st = make_status(ortInvalidArgument, "ai.netssm: attribute eps must be positive");
		if (st) {
			free(k);
			return st;
		}
	}
	*out = k;
	return NULL;
}
static void op_destroy(void *k) { free(k); }
static status_t op_compute(void *k, void *ctx) {
	kernel *kk = k;
	return kk->op->compute(kk, ctx);
}

// ---- tensors of a kernel context ----

typedef struct {
	float *data;
	int64_t dims[8];
	size_t rank;
} tensor;

static status_t shape_of(const void *value, tensor *t) {
	void *info = NULL;
	status_t st = CALL(slotGetTensorTypeAndShape, status_t (*)(const void *, void **))(value, &info);
	if (st) return st;
	st = CALL(slotGetDimensionsCount, status_t (*)(const void *, size_t *))(info, &t->rank);
	if (!st && t->rank > 8) st = make_status(ortInvalidArgument, "ai.netssm: tensor of rank over 8");
	if (!st) st = CALL(slotGetDimensions, status_t (*)(const void *, int64_t *, size_t))(info, t->dims, t->rank);
	CALL(slotReleaseTensorTypeAndShapeInfo, void (*)(void *))(info);
	return st;
}

static status_t inputs(void *ctx, tensor *t, int n) {
	for (int i = 0; i < n; i++) {
		const void *v = NULL;
		status_t st = CALL(slotKernelContextGetInput, status_t (*)(void *, size_t, const void **))(ctx, (size_t)i, &v);
		if (st) return st;
		if (!v) return make_status(ortInvalidArgument, "ai.netssm: a required input is missing");
		if ((st = shape_of(v, &t[i]))) return st;
		if ((st = CALL(slotGetTensorMutableData, status_t (*)(const void *, void **))(v, (void **)&t[i].data))) return st;
	}
	return NULL;
}

static status_t output(void *ctx, size_t i, const int64_t *dims, size_t rank, float **data) {
	void *v = NULL;
	status_t st = CALL(slotKernelContextGetOutput, status_t (*)(void *, size_t, const int64_t *, size_t, void **))(ctx, i, dims, rank, &v);
	if (st) return st;
	return CALL(slotGetTensorMutableData, status_t (*)(void *, void **))(v, (void **)data);
}

// shape_error builds a status naming the op and what is wrong.
static status_t shape_error(const char *op, const char *what) {
	char msg[256];
	snprintf(msg, sizeof msg, "ai.netssm %s: %s", op, what);
	return make_status(ortInvalidArgument, msg);
}

static int is(const tensor *t, size_t rank, const int64_t *want) {
	if (t->rank != rank) return 0;
	for (size_t i = 0; i < rank; i++)
		if (t->dims[i] != want[i]) return 0;
	return 1;
}

// ort_parallel runs a kernel's tasks on the session's intra-op thread pool,
// so never on more threads than the session was given.
typedef struct {
	void *ctx;
	status_t err;
} par_ctx;

static void ort_parallel(void *c, nss_task fn, size_t total, void *user) {
	par_ctx *p = c;
	if (p->err || total == 0) return;
	if (total == 1) {
		fn(user, 0);
		return;
	}
	p->err = CALL(slotKernelContextParallelFor, status_t (*)(void *, void (*)(void *, size_t), size_t, size_t, void *))(p->ctx, fn, total, 0, user);
}

static status_t finish(par_ctx *p, int fail, const char *op) {
	if (p->err) return p->err;
	if (fail) return shape_error(op, "out of memory for the kernel's scratch buffers");
	return NULL;
}

// ssd_dims checks x (B,L,H,P), dt (B,L,H), A (H), Bm and Cm (B,L,N), h0
// (B,H,P,N): the first six inputs of both SSD ops.
static status_t ssd_dims(const char *op, const tensor *in, int64_t chunk, nss_dims *d) {
	if (in[0].rank != 4) return shape_error(op, "x must be (B, L, H, P)");
	if (in[3].rank != 3) return shape_error(op, "Bm must be (B, L, N)");
	for (int i = 0; i < 4; i++)
		if (in[0].dims[i] > INT_MAX / 2) return shape_error(op, "x is too large");
	if (in[3].dims[2] > INT_MAX / 2 || chunk > INT_MAX / 2) return shape_error(op, "Bm or the chunk is too large");
	*d = (nss_dims){(int)in[0].dims[0], (int)in[0].dims[1], (int)in[0].dims[2], (int)in[0].dims[3], (int)in[3].dims[2], (int)chunk};
	int64_t dt[3] = {d->B, d->L, d->H}, A[1] = {d->H}, bn[3] = {d->B, d->L, d->N}, st[4] = {d->B, d->H, d->P, d->N};
	if (!is(&in[1], 3, dt)) return shape_error(op, "dt must be (B, L, H) like x");
	if (!is(&in[2], 1, A)) return shape_error(op, "A must be (H)");
	if (!is(&in[3], 3, bn) || !is(&in[4], 3, bn)) return shape_error(op, "Bm and Cm must be (B, L, N)");
	if (!is(&in[5], 4, st)) return shape_error(op, "h0 must be (B, H, P, N)");
	return NULL;
}

// chunk_states_dims are the dims of the states entering the chunks, (B, H,
// ⌈L/Q⌉, N, P).
static void chunk_states_dims(const nss_dims *d, int64_t out[5]) {
	out[0] = d->B, out[1] = d->H, out[2] = ((int64_t)d->L + d->Q - 1) / d->Q, out[3] = d->N, out[4] = d->P;
}

// SSDScan(x, dt, A, Bm, Cm, h0; chunk) → (y (B,L,H,P), final (B,H,P,N),
// chunk states (B,H,⌈L/Q⌉,N,P), which SSDScanGrad reads).
static status_t ssd_scan(void *kv, void *ctx) {
	const kernel *k = kv;
	tensor in[6];
	nss_dims d;
	int64_t sd[5];
	status_t st = inputs(ctx, in, 6);
	if (!st) st = ssd_dims("SSDScan", in, k->chunk, &d);
	float *y, *final, *states;
	if (!st) st = output(ctx, 0, in[0].dims, 4, &y);
	if (!st) st = output(ctx, 1, in[5].dims, 4, &final);
	if (!st) chunk_states_dims(&d, sd), st = output(ctx, 2, sd, 5, &states);
	if (st) return st;
	par_ctx p = {ctx, NULL};
	int fail = nss_ssd_fwd_f32(&d, in[0].data, in[1].data, in[2].data, in[3].data, in[4].data, in[5].data, y, final, states,
				   ort_parallel, &p);
	return finish(&p, fail, "SSDScan");
}

// SSDScanGrad(x, dt, A, Bm, Cm, h0, dy, dfinal, chunk states, y; chunk) →
// (dx, ddt, dA, dBm, dCm, dh0), y being SSDScan's first output.
static status_t ssd_scan_grad(void *kv, void *ctx) {
	const kernel *k = kv;
	tensor in[10];
	nss_dims d;
	int64_t sd[5];
	status_t st = inputs(ctx, in, 10);
	if (!st) st = ssd_dims("SSDScanGrad", in, k->chunk, &d);
	if (!st && !is(&in[6], 4, in[0].dims)) st = shape_error("SSDScanGrad", "dy must be shaped like x");
	if (!st && !is(&in[7], 4, in[5].dims)) st = shape_error("SSDScanGrad", "dfinal must be shaped like h0");
	if (!st && !is(&in[9], 4, in[0].dims)) st = shape_error("SSDScanGrad", "y must be shaped like x");
	if (!st && (chunk_states_dims(&d, sd), !is(&in[8], 5, sd)))
		st = shape_error("SSDScanGrad", "the chunk states must be SSDScan's third output, (B, H, ceil(L/chunk), N, P)");
	float *out[6];
	for (int i = 0; i < 6 && !st; i++) st = output(ctx, (size_t)i, in[i].dims, in[i].rank, &out[i]);
	if (st) return st;
	par_ctx p = {ctx, NULL};
	int fail = nss_ssd_bwd_f32(&d, in[0].data, in[1].data, in[2].data, in[3].data, in[4].data, in[5].data, in[8].data, in[9].data, in[6].data,
				   in[7].data, out[0], out[1], out[2], out[3], out[4], out[5], ort_parallel, &p);
	return finish(&p, fail, "SSDScanGrad");
}

// MixerStep(zxbcdt (B, 2·H·P+2N+H), conv (B,C,K), conv_w (C,K), conv_b (C),
// dt_bias (H), A_log (H), D (H), norm_w (H·P), ssm (B,H,P,N)) →
// (out (B, H·P), conv' (B,C,K), ssm' (B,H,P,N)), C = H·P + 2N.
static status_t mixer_step(void *k, void *ctx) {
	(void)k;
	const char *op = "MixerStep";
	tensor in[9];
	status_t st = inputs(ctx, in, 9);
	if (st) return st;
	if (in[8].rank != 4 || in[1].rank != 3 || in[4].rank != 1) return shape_error(op, "ssm must be (B, H, P, N), conv (B, C, K), dt_bias (H)");
	nss_step_dims d = {(int)in[8].dims[0], (int)in[8].dims[1], (int)in[8].dims[2], (int)in[8].dims[3], (int)in[1].dims[2]};
	int64_t di = (int64_t)d.H * d.P, C = di + 2 * d.N;
	int64_t zx[2] = {d.B, 2 * di + 2 * d.N + d.H}, conv[3] = {d.B, C, d.K}, w[2] = {C, d.K}, c1[1] = {C}, h1[1] = {d.H}, n1[1] = {di}, out[2] = {d.B, di};
	if (d.K < 1 || !is(&in[0], 2, zx) || !is(&in[1], 3, conv) || !is(&in[2], 2, w) || !is(&in[3], 1, c1) ||
	    !is(&in[4], 1, h1) || !is(&in[5], 1, h1) || !is(&in[6], 1, h1) || !is(&in[7], 1, n1))
		return shape_error(op, "inputs do not agree with ssm (B, H, P, N) and conv (B, H·P+2N, K)");
	float *o, *conv2, *ssm2;
	if ((st = output(ctx, 0, out, 2, &o)) || (st = output(ctx, 1, conv, 3, &conv2)) || (st = output(ctx, 2, in[8].dims, 4, &ssm2))) return st;
	par_ctx p = {ctx, NULL};
	int fail = nss_mixer_step(&d, in[0].data, in[1].data, in[2].data, in[3].data, in[4].data, in[5].data, in[6].data, in[7].data,
				  in[8].data, o, conv2, ssm2, ort_parallel, &p);
	return finish(&p, fail, op);
}

// BlockStep(x (B, D), norm_w (D), in_w panels (⌈(2·H·P+2N+H)/16⌉, D, 16),
// conv (B,C,K), conv_w (C,K), conv_b (C), dt_bias (H), A_log (H), D (H),
// gnorm_w (H·P), ssm (B,H,P,N), out_w panels (⌈D/16⌉, H·P, 16); eps) →
// (x' (B, D), conv' (B,C,K), ssm' (B,H,P,N)), C = H·P + 2N: one residual
// block's decoding step.
static status_t block_step(void *kv, void *ctx) {
	const kernel *k = kv;
	const char *op = "BlockStep";
	tensor in[12];
	status_t st = inputs(ctx, in, 12);
	if (st) return st;
	if (in[0].rank != 2 || in[10].rank != 4 || in[3].rank != 3) return shape_error(op, "x must be (B, D), ssm (B, H, P, N), conv (B, C, K)");
	nss_block_dims bd = {{(int)in[10].dims[0], (int)in[10].dims[1], (int)in[10].dims[2], (int)in[10].dims[3], (int)in[3].dims[2]},
			     (int)in[0].dims[1], k->eps};
	const nss_step_dims *d = &bd.step;
	int64_t di = (int64_t)d->H * d->P, C = di + 2 * d->N, width = 2 * di + 2 * d->N + d->H;
	const int64_t T = NSS_BLOCK_PANEL;
	int64_t x[2] = {d->B, bd.D}, dm[1] = {bd.D}, inw[3] = {(width + T - 1) / T, bd.D, T}, conv[3] = {d->B, C, d->K},
		w[2] = {C, d->K}, c1[1] = {C}, h1[1] = {d->H}, n1[1] = {di}, outw[3] = {(bd.D + T - 1) / T, di, T};
	if (d->K < 1 || !is(&in[0], 2, x) || !is(&in[1], 1, dm) || !is(&in[2], 3, inw) || !is(&in[3], 3, conv) ||
	    !is(&in[4], 2, w) || !is(&in[5], 1, c1) || !is(&in[6], 1, h1) || !is(&in[7], 1, h1) || !is(&in[8], 1, h1) ||
	    !is(&in[9], 1, n1) || !is(&in[11], 3, outw))
		return shape_error(op, "inputs do not agree with x (B, D), ssm (B, H, P, N) and conv (B, H·P+2N, K)");
	float *xo, *conv2, *ssm2;
	if ((st = output(ctx, 0, x, 2, &xo)) || (st = output(ctx, 1, conv, 3, &conv2)) || (st = output(ctx, 2, in[10].dims, 4, &ssm2))) return st;
	// On netssm's own threads: at the batches BlockStep serves, a block takes
	// tens of microseconds, and handing its products to ONNX Runtime's
	// intra-op pool costs more than the other threads save (docs/kernels.md).
	int threads = k->threads;
	par_ctx p = {ctx, NULL};
	int fail = nss_block_step(&bd, in[0].data, in[1].data, in[2].data, in[3].data, in[4].data, in[5].data, in[6].data,
				  in[7].data, in[8].data, in[9].data, in[10].data, in[11].data, xo, conv2, ssm2, nss_pool_par, &threads);
	return finish(&p, fail, op);
}

// conv_dims checks x (B,L,C), state (B,C,W), w (C,W), bias (C): the first
// four inputs of both convolution ops.
static status_t conv_dims(const char *op, const tensor *in, nss_conv_dims *d) {
	if (in[0].rank != 3 || in[1].rank != 3) return shape_error(op, "x must be (B, L, C), state (B, C, W)");
	for (int i = 0; i < 3; i++)
		if (in[0].dims[i] > INT_MAX / 2 || in[1].dims[i] > INT_MAX / 2) return shape_error(op, "x or state is too large");
	*d = (nss_conv_dims){(int)in[0].dims[0], (int)in[0].dims[1], (int)in[0].dims[2], (int)in[1].dims[2]};
	int64_t st[3] = {d->B, d->C, d->W}, w[2] = {d->C, d->W}, c1[1] = {d->C};
	if (d->W < 1 || !is(&in[1], 3, st) || !is(&in[2], 2, w) || !is(&in[3], 1, c1))
		return shape_error(op, "state must be (B, C, W), w (C, W) and bias (C) for x (B, L, C)");
	return NULL;
}

// ConvSilu(x, state, w, bias) → (silu(causal depthwise conv) (B,L,C), next state (B,C,W)).
static status_t conv_silu(void *k, void *ctx) {
	(void)k;
	tensor in[4];
	nss_conv_dims d;
	status_t st = inputs(ctx, in, 4);
	if (!st) st = conv_dims("ConvSilu", in, &d);
	float *y, *next;
	if (!st) st = output(ctx, 0, in[0].dims, 3, &y);
	if (!st) st = output(ctx, 1, in[1].dims, 3, &next);
	if (st) return st;
	par_ctx p = {ctx, NULL};
	int fail = nss_conv_fwd(&d, in[0].data, in[1].data, in[2].data, in[3].data, y, next, ort_parallel, &p);
	return finish(&p, fail, "ConvSilu");
}

// ConvSiluGrad(x, state, w, bias, dy, dnext) → (dx, dstate, dw, dbias).
static status_t conv_silu_grad(void *k, void *ctx) {
	(void)k;
	tensor in[6];
	nss_conv_dims d;
	status_t st = inputs(ctx, in, 6);
	if (!st) st = conv_dims("ConvSiluGrad", in, &d);
	if (!st && !is(&in[4], 3, in[0].dims)) st = shape_error("ConvSiluGrad", "dy must be shaped like x");
	if (!st && !is(&in[5], 3, in[1].dims)) st = shape_error("ConvSiluGrad", "dnext must be shaped like state");
	float *out[4];
	for (int i = 0; i < 4 && !st; i++) st = output(ctx, (size_t)i, in[i].dims, in[i].rank, &out[i]);
	if (st) return st;
	par_ctx p = {ctx, NULL};
	int fail = nss_conv_bwd(&d, in[0].data, in[1].data, in[2].data, in[3].data, in[4].data, in[5].data, out[0], out[1],
				out[2], out[3], ort_parallel, &p);
	return finish(&p, fail, "ConvSiluGrad");
}

// norm_dims checks x (…, D) and w (D) and reads the attribute eps.
static status_t norm_dims(const char *op, const tensor *in, float eps, nss_norm_dims *d) {
	if (in[0].rank < 1 || in[1].rank != 1 || in[0].dims[in[0].rank - 1] != in[1].dims[0] || in[1].dims[0] < 1 ||
	    in[1].dims[0] > INT_MAX / 2)
		return shape_error(op, "x must be (…, D) and w (D)");
	int64_t rows = 1;
	for (size_t i = 0; i + 1 < in[0].rank; i++) rows *= in[0].dims[i];
	*d = (nss_norm_dims){rows, (int)in[1].dims[0], eps};
	return NULL;
}

// RMSNorm(x, w; eps) → y.
static status_t rms_norm(void *kv, void *ctx) {
	const kernel *k = kv;
	tensor in[2];
	nss_norm_dims d;
	status_t st = inputs(ctx, in, 2);
	if (!st) st = norm_dims("RMSNorm", in, k->eps, &d);
	float *y;
	if (!st) st = output(ctx, 0, in[0].dims, in[0].rank, &y);
	if (st) return st;
	par_ctx p = {ctx, NULL};
	int fail = nss_norm_fwd(&d, in[0].data, in[1].data, y, ort_parallel, &p);
	return finish(&p, fail, "RMSNorm");
}

// RMSNormGrad(x, w, dy; eps) → (dx, dw).
static status_t rms_norm_grad(void *kv, void *ctx) {
	const kernel *k = kv;
	tensor in[3];
	nss_norm_dims d;
	status_t st = inputs(ctx, in, 3);
	if (!st) st = norm_dims("RMSNormGrad", in, k->eps, &d);
	if (!st && !is(&in[2], in[0].rank, in[0].dims)) st = shape_error("RMSNormGrad", "dy must be shaped like x");
	float *dx, *dw;
	if (!st) st = output(ctx, 0, in[0].dims, in[0].rank, &dx);
	if (!st) st = output(ctx, 1, in[1].dims, 1, &dw);
	if (st) return st;
	par_ctx p = {ctx, NULL};
	int fail = nss_norm_bwd(&d, in[0].data, in[1].data, in[2].data, dx, dw, ort_parallel, &p);
	return finish(&p, fail, "RMSNormGrad");
}

// gnorm_dims checks y (…, H·P), x and z shaped like y, Dskip (H) and w
// (H·P): the first five inputs of both gate ops.
static status_t gnorm_dims(const char *op, const tensor *in, float eps, nss_norm_dims *d, int *H) {
	tensor yw[2] = {in[0], in[4]};
	status_t st = norm_dims(op, yw, eps, d);
	if (st) return st;
	if (!is(&in[1], in[0].rank, in[0].dims) || !is(&in[3], in[0].rank, in[0].dims))
		return shape_error(op, "x and z must be shaped like y");
	if (in[2].rank != 1 || in[2].dims[0] < 1 || d->D % in[2].dims[0] != 0)
		return shape_error(op, "D must be (H) with H dividing y's last axis");
	*H = (int)in[2].dims[0];
	return NULL;
}

// GatedRMSNorm(y, x, D, z, w; eps) → RMSNorm((y + D·x) ⊙ silu(z)) ⊙ w.
static status_t gated_rms_norm(void *kv, void *ctx) {
	const kernel *k = kv;
	const char *op = "GatedRMSNorm";
	tensor in[5];
	nss_norm_dims d;
	int H;
	status_t st = inputs(ctx, in, 5);
	if (!st) st = gnorm_dims(op, in, k->eps, &d, &H);
	float *out;
	if (!st) st = output(ctx, 0, in[0].dims, in[0].rank, &out);
	if (st) return st;
	par_ctx p = {ctx, NULL};
	int fail = nss_gnorm_fwd(&d, H, in[0].data, in[1].data, in[2].data, in[3].data, in[4].data, out, ort_parallel, &p);
	return finish(&p, fail, op);
}

// GatedRMSNormGrad(y, x, D, z, w, dout; eps) → (dy, dx, dD, dz, dw).
static status_t gated_rms_norm_grad(void *kv, void *ctx) {
	const kernel *k = kv;
	const char *op = "GatedRMSNormGrad";
	tensor in[6];
	nss_norm_dims d;
	int H;
	status_t st = inputs(ctx, in, 6);
	if (!st) st = gnorm_dims(op, in, k->eps, &d, &H);
	if (!st && !is(&in[5], in[0].rank, in[0].dims)) st = shape_error(op, "dout must be shaped like y");
	float *out[5];
	for (int i = 0; i < 5 && !st; i++) st = output(ctx, (size_t)i, in[i].dims, in[i].rank, &out[i]);
	if (st) return st;
	par_ctx p = {ctx, NULL};
	int fail = nss_gnorm_bwd(&d, H, in[0].data, in[1].data, in[2].data, in[3].data, in[4].data, in[5].data, out[0], out[1],
				 out[2], out[3], out[4], ort_parallel, &p);
	return finish(&p, fail, op);
}

// xent_dims checks logits (…, V) and targets (…) and returns the row count.
static status_t xent_dims(const char *op, const tensor *in, int64_t *rows) {
	if (in[0].rank < 1 || in[1].rank != in[0].rank - 1 || in[0].dims[in[0].rank - 1] < 1 ||
	    in[0].dims[in[0].rank - 1] > INT_MAX / 2)
		return shape_error(op, "logits must be (…, V) and targets (…)");
	*rows = 1;
	for (size_t i = 0; i + 1 < in[0].rank; i++) {
		if (in[1].dims[i] != in[0].dims[i]) return shape_error(op, "targets must be shaped like logits without their last axis");
		*rows *= in[0].dims[i];
	}
	return NULL;
}

// SoftmaxCrossEntropy(logits (…, V), targets (…) int64) → nll (…).
static status_t softmax_xent(void *k, void *ctx) {
	(void)k;
	const char *op = "SoftmaxCrossEntropy";
	tensor in[2];
	int64_t rows;
	status_t st = inputs(ctx, in, 2);
	if (!st) st = xent_dims(op, in, &rows);
	float *nll;
	if (!st) st = output(ctx, 0, in[1].dims, in[1].rank, &nll);
	if (st) return st;
	par_ctx p = {ctx, NULL};
	int fail = nss_xent_fwd(rows, (int)in[0].dims[in[0].rank - 1], in[0].data, (const int64_t *)(void *)in[1].data, nll,
				ort_parallel, &p);
	return finish(&p, fail, op);
}

// SoftmaxCrossEntropyGrad(logits, targets, dnll) → dlogits.
static status_t softmax_xent_grad(void *k, void *ctx) {
	(void)k;
	const char *op = "SoftmaxCrossEntropyGrad";
	tensor in[3];
	int64_t rows;
	status_t st = inputs(ctx, in, 3);
	if (!st) st = xent_dims(op, in, &rows);
	if (!st && !is(&in[2], in[1].rank, in[1].dims)) st = shape_error(op, "dnll must be shaped like targets");
	float *dx;
	if (!st) st = output(ctx, 0, in[0].dims, in[0].rank, &dx);
	if (st) return st;
	par_ctx p = {ctx, NULL};
	int fail = nss_xent_bwd(rows, (int)in[0].dims[in[0].rank - 1], in[0].data, (const int64_t *)(void *)in[1].data,
				in[2].data, dx, ort_parallel, &p);
	return finish(&p, fail, op);
}

// ---- the domain ----

#define OP(nm, nin, nout, chk, fn) OPX(nm, nin, nout, chk, 0, 0, fn)
#define OPN(nm, nin, nout, chk, nrm, fn) OPX(nm, nin, nout, chk, nrm, 0, fn)
#define OPX(nm, nin, nout, chk, nrm, i64, fn)                                                                               \
	{                                                                                                                \
		{24, NULL, op_name, op_ep, op_in_type, op_inputs, op_float, op_outputs, NULL, op_destroy, op_required,  \
		 op_required, op_mem_default, op_one, op_one, op_one, op_one, op_create, op_compute, NULL, op_start,     \
		 op_end, op_no_pairs, op_release_pairs, op_no_pairs, op_release_pairs},                                  \
		    nm, nin, nout, chk, nrm, i64, fn                                                                     \
	}

static nss_op ops[] = {
	OP("SSDScan", 6, 3, 1, ssd_scan),
	OP("SSDScanGrad", 10, 6, 1, ssd_scan_grad),
	OP("MixerStep", 9, 3, 0, mixer_step),
	OPN("BlockStep", 12, 3, 0, 1, block_step),
	OP("ConvSilu", 4, 2, 0, conv_silu),
	OP("ConvSiluGrad", 6, 4, 0, conv_silu_grad),
	OPN("RMSNorm", 2, 1, 0, 1, rms_norm),
	OPN("RMSNormGrad", 3, 2, 0, 1, rms_norm_grad),
	OPN("GatedRMSNorm", 5, 1, 0, 1, gated_rms_norm),
	OPN("GatedRMSNormGrad", 6, 5, 0, 1, gated_rms_norm_grad),
	OPX("SoftmaxCrossEntropy", 2, 1, 0, 0, 1 << 1, softmax_xent),
	OPX("SoftmaxCrossEntropyGrad", 3, 1, 0, 0, 1 << 1, softmax_xent_grad),
};

const char *nss_fused_op_name(int i) { return i >= 0 && i < (int)(sizeof ops / sizeof ops[0]) ? ops[i].name : NULL; }

static void *domain;

// error_text turns a status into a malloc'd message and releases it.
static char *error_text(status_t st) {
	const char *msg = CALL(slotGetErrorMessage, const char *(*)(status_t))(st);
	char *out = strdup(msg ? msg : "unknown error");
	CALL(slotReleaseStatus, void (*)(status_t))(st);
	return out;
}

// nss_fused_register adds the domain to session options (OrtSessionOptions*)
// of the ONNX Runtime library at path; it returns NULL or a malloc'd error.
char *nss_fused_register(const char *path, void *options) {
	if (!api) {
		void *h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
		if (!h) return strdup("the ONNX Runtime library is not loaded");
		typedef struct {
			const void *(*GetApi)(uint32_t);
			const char *(*GetVersionString)(void);
		} base_t;
		const base_t *(*get)(void) = (const base_t *(*)(void))dlsym(h, "OrtGetApiBase");
		if (!get) return strdup("the library has no OrtGetApiBase");
		api = (void *const *)get()->GetApi(24);
		if (!api) return strdup("the library does not serve C API version 24");
	}
	if (!domain) {
		status_t st = CALL(slotCreateCustomOpDomain, status_t (*)(const char *, void **))("ai.netssm", &domain);
		if (st) return error_text(st);
		for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
			st = CALL(slotCustomOpDomainAdd, status_t (*)(void *, const void *))(domain, &ops[i].ort);
			if (st) return error_text(st);
		}
	}
	status_t st = CALL(slotAddCustomOpDomain, status_t (*)(void *, void *))(options, domain);
	return st ? error_text(st) : NULL;
}
