// CPU kernels of netssm's custom-op domain: the chunked SSD scan, the
// causal convolution with silu, the RMSNorms (plain, and a mixer's gated one
// with the D·x skip) and the softmax cross-entropy, each with its backward;
// for decoding, the one-token mixer step and a whole residual block's step
// around it. Plain C that the compiler
// vectorises; on x86-64 the hot functions are also compiled for x86-64-v3
// (AVX2, FMA) and x86-64-v4 (AVX-512) and the loader picks the copy the CPU
// supports at run time (GCC/Clang target_clones), so the binary still runs
// on any x86-64.

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fused_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NSS_NO_CLONES)
#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
// The SSD scan's matrix product also has a copy written for 512-bit vectors
// (fused_gemm.h), which the target clones cannot give it: their vectors
// keep the width of the source. It runs where the CPU has AVX-512.
#define NSS_WIDE_GEMM 1
#define NSS_WIDE __attribute__((target("arch=x86-64-v4")))
static int nss_wide = -1; // 1: the 512-bit product; -1: not decided yet

static int nss_cpu_has_avx512(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
	       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
	       __builtin_cpu_supports("avx512cd");
}

static int nss_wide_vectors(void) {
	int w = __atomic_load_n(&nss_wide, __ATOMIC_RELAXED);
	if (w < 0) { // every thread that finds it unset computes the same value
		w = nss_cpu_has_avx512();
		__atomic_store_n(&nss_wide, w, __ATOMIC_RELAXED);
	}
	return w;
}

int nss_ssd_vector_bits(int bits) {
	if (bits == 256 || bits == 512) __atomic_store_n(&nss_wide, bits == 512 && nss_cpu_has_avx512(), __ATOMIC_RELAXED);
	return nss_wide_vectors() ? 512 : 256;
}
#else
#define HOT
#define NSS_WIDE_GEMM 0
int nss_ssd_vector_bits(int bits) {
	(void)bits;
	return 256;
}
#endif

// GCC keeps a float comparison under ?: as a branch when it must preserve
// floating-point exception flags (-ftrapping-math, its default), and then
// no loop over nss_expf vectorises; the kernels never read those flags, so
// they are compiled without trapping math (clang's default already).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#define NCHUNKS(d) ((int)(((d)->L + (d)->Q - 1) / (d)->Q))

// nss_expf is exp for float32 written so that loops over it vectorise:
// exp(x) = 2ⁿ·exp(r) with n = round(x/ln 2) and |r| ≤ ln 2 / 2, a degree-7
// Taylor polynomial for exp(r) (relative error about 1e-7), 0 below the
// smallest normal result, NaN in, NaN out.
static inline float nss_expf(float x) {
	const float lo = -87.33654f, hi = 88.0f;
	float xc = x > hi ? hi : x;
	xc = xc < lo ? lo : xc;
	float t = xc * 1.44269504088896341f + 12582912.0f; // 1.5·2²³: rounds to an integer
	float n = t - 12582912.0f;
	float r = xc - n * 0.693359375f;
	r = r - n * -2.12194440e-4f;
	float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
	int32_t ti, si;
	memcpy(&ti, &t, sizeof ti);
	si = (ti - 0x4B400000 + 127) << 23;
	float scale;
	memcpy(&scale, &si, sizeof scale);
	return x < lo ? 0.0f : p * scale;
}

void nss_serial(void *ctx, nss_task fn, size_t total, void *user) {
	(void)ctx;
	for (size_t i = 0; i < total; i++) fn(user, i);
}

// The scan's transposes shuffle whole vectors where the compiler can say so
// (GCC 12 and clang have __builtin_shufflevector); the float64 instance, for
// the tests, goes element by element.
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define NSS_HAVE_SHUFFLE 1
#endif
#endif
#ifndef NSS_HAVE_SHUFFLE
#define NSS_HAVE_SHUFFLE 0
#endif

#define REAL float
#define SUF _f32
#define EXPR nss_expf
#define TINY FLT_MIN
#define NSS_SHUFFLE_TRANSPOSE NSS_HAVE_SHUFFLE
#include "fused_ssd.h"
#undef REAL
#undef SUF
#undef EXPR
#undef TINY
#undef NSS_SHUFFLE_TRANSPOSE

#define REAL double
#define SUF _f64
#define EXPR exp
#define TINY DBL_MIN
#define NSS_SHUFFLE_TRANSPOSE 0
#include "fused_ssd.h"
#undef REAL
#undef SUF
#undef EXPR
#undef TINY
#undef NSS_SHUFFLE_TRANSPOSE

// ---- the one-token mixer step ----

typedef struct {
	nss_step_dims d;
	const float *zxbcdt, *conv, *convw, *convb, *dtb, *alog, *D, *normw, *ssm;
	float *out, *conv2, *ssm2;
	float *xc; // (B, C): each row's conv + silu output, x then Bm then Cm
} step_args;

// sigm and silu use nss_expf, so that loops over them vectorise.
static inline float sigm(float v) { return 1.0f / (1.0f + nss_expf(-v)); }
static inline float silu(float v) { return v * sigm(v); }
static inline float softplus(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

// wdot is Σ a[i]·w[i]·b[i] in 16 partial sums added pairwise at the end, as
// dot_f32 (fused_ssd.h) sums Σ a[i]·b[i]: both vectorise, where one running
// sum is a chain of n dependent additions.
static inline float wdot(const float *restrict a, const float *restrict w, const float *restrict b, size_t n) {
	float acc[16] = {0}, tail = 0;
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		for (int j = 0; j < 16; j++) acc[j] += a[i + j] * w[i + j] * b[i + j];
	for (; i < n; i++) tail += a[i] * w[i] * b[i];
	for (int j = 0; j < 8; j++) acc[j] += acc[j + 8];
	for (int j = 0; j < 4; j++) acc[j] += acc[j + 4];
	return tail + (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

// state_rows updates four rows of a head's state in place, s_r = s_r·dA +
// k_r·Bm (rows of stride N), and writes their readouts s_r·Cm to y. Each
// row sums in 16 partial sums (a vector's lanes), added pairwise at the
// end, and the four rows are independent, so that their additions overlap:
// the update and the readout in one pass, without a long chain of dependent
// additions.
static inline __attribute__((always_inline)) void state_rows(float *restrict s, float dA, const float *k,
							     const float *restrict Bm, const float *restrict Cm,
							     size_t N, float *y) {
	float acc[4][16] = {{0}}, tail[4] = {0};
	size_t n = 0;
	for (; n + 16 <= N; n += 16)
		for (int r = 0; r < 4; r++)
			for (int j = 0; j < 16; j++) {
				float v = s[r * N + n + j] * dA + k[r] * Bm[n + j];
				s[r * N + n + j] = v;
				acc[r][j] += v * Cm[n + j];
			}
	for (; n < N; n++)
		for (int r = 0; r < 4; r++) {
			float v = s[r * N + n] * dA + k[r] * Bm[n];
			s[r * N + n] = v;
			tail[r] += v * Cm[n];
		}
	for (int r = 0; r < 4; r++) {
		for (int j = 0; j < 8; j++) acc[r][j] += acc[r][j + 8];
		for (int j = 0; j < 4; j++) acc[r][j] += acc[r][j + 4];
		y[r] = tail[r] + (acc[r][0] + acc[r][2]) + (acc[r][1] + acc[r][3]);
	}
}

// conv_window_step moves every channel's window of the conv state (C, K)
// on by one step in place, its oldest value out and the channel's new input
// xin in, and writes the convolution of the window, bias[c] + Σ_k w[c][k]·
// win[c][k], to xc. The common width 4 is written out, so that the compiler
// vectorises it over channels.
static inline __attribute__((always_inline)) void conv_window_step(float *restrict win, const float *restrict xin,
								   const float *restrict w, const float *restrict bias,
								   size_t C, size_t K, float *restrict xc) {
	if (K == 4) {
		for (size_t c = 0; c < C; c++) {
			float *r = win + 4 * c;
			const float *wc = w + 4 * c;
			float r1 = r[1], r2 = r[2], r3 = r[3], r4 = xin[c];
			r[0] = r1, r[1] = r2, r[2] = r3, r[3] = r4;
			xc[c] = bias[c] + r1 * wc[0] + r2 * wc[1] + r3 * wc[2] + r4 * wc[3];
		}
		return;
	}
	for (size_t c = 0; c < C; c++) {
		float *r = win + c * K, acc = bias[c];
		for (size_t k = 0; k + 1 < K; k++) r[k] = r[k + 1];
		r[K - 1] = xin[c];
		for (size_t k = 0; k < K; k++) acc += r[k] * w[c * K + k];
		xc[c] = acc;
	}
}

// A mixer step runs in three passes, each a task per row or per (row,
// head): the conv window and conv + silu (conv_step_task), every head's SSM
// state update and output + D·x (head_step_task: the bulk of the work,
// which at batch 1 still has a task per head for the threads to share), and
// the gated RMSNorm (gate_step_task). At larger batches each row is one
// task of all three (row_step_task).

HOT static void conv_step_task(void *user, size_t b) {
	step_args *a = user;
	const nss_step_dims *d = &a->d;
	size_t H = d->H, P = d->P, N = d->N, K = d->K, di = H * P, C = di + 2 * N, width = 2 * di + 2 * N + H;
	const float *cs = a->conv + b * C * K;
	float *cs2 = a->conv2 + b * C * K, *xc = a->xc + b * C;
	if (cs2 != cs) memcpy(cs2, cs, C * K * sizeof(float));
	conv_window_step(cs2, a->zxbcdt + b * width + di, a->convw, a->convb, C, K, xc);
	for (size_t c = 0; c < C; c++) xc[c] = silu(xc[c]);
}

HOT static void head_step_task(void *user, size_t task) {
	step_args *a = user;
	const nss_step_dims *d = &a->d;
	size_t H = d->H, P = d->P, N = d->N, di = H * P, C = di + 2 * N, width = 2 * di + 2 * N + H;
	size_t b = task / H, h = task % H;
	const float *x = a->xc + b * C, *Bm = x + di, *Cm = x + di + N;
	float dt = softplus(a->zxbcdt[b * width + di + C + h] + a->dtb[h]);
	float dA = expf(dt * -expf(a->alog[h]));
	const float *s = a->ssm + (b * H + h) * P * N;
	float *s2 = a->ssm2 + (b * H + h) * P * N, *out = a->out + b * di;
	if (s2 != s) memcpy(s2, s, P * N * sizeof(float));
	for (size_t p = 0; p < P; p += 4) {
		float k[4] = {0}, y[4];
		size_t rows = P - p < 4 ? P - p : 4;
		for (size_t r = 0; r < rows; r++) k[r] = dt * x[h * P + p + r];
		if (rows == 4)
			state_rows(s2 + p * N, dA, k, Bm, Cm, N, y);
		else
			for (size_t r = 0; r < rows; r++) {
				float *row = s2 + (p + r) * N;
				y[r] = 0;
				for (size_t n = 0; n < N; n++) {
					row[n] = row[n] * dA + k[r] * Bm[n];
					y[r] += row[n] * Cm[n];
				}
			}
		for (size_t r = 0; r < rows; r++) out[h * P + p + r] = y[r] + a->D[h] * x[h * P + p + r];
	}
}

HOT static void gate_step_task(void *user, size_t b) {
	step_args *a = user;
	const nss_step_dims *d = &a->d;
	size_t di = (size_t)d->H * d->P, width = 2 * di + 2 * (size_t)d->N + d->H;
	const float *z = a->zxbcdt + b * width;
	float *out = a->out + b * di;
	for (size_t i = 0; i < di; i++) out[i] *= silu(z[i]);
	float ms = dot_f32(out, out, di);
	float inv = 1.0f / sqrtf(ms / (float)di + 1e-5f);
	for (size_t i = 0; i < di; i++) out[i] = out[i] * inv * a->normw[i];
}

// From stepRowsAlone rows on, a task runs a whole row's three passes: the
// rows are work enough for the threads, and one parallel section costs less
// than three.
enum { stepRowsAlone = 8 };

static void row_step_task(void *user, size_t b) {
	const step_args *a = user;
	conv_step_task(user, b);
	for (size_t h = 0; h < (size_t)a->d.H; h++) head_step_task(user, b * a->d.H + h);
	gate_step_task(user, b);
}

int nss_mixer_step(const nss_step_dims *d, const float *zxbcdt, const float *conv, const float *convw,
		   const float *convb, const float *dtb, const float *alog, const float *D, const float *normw,
		   const float *ssm, float *out, float *conv2, float *ssm2, nss_par par, void *ctx) {
	size_t B = d->B, C = (size_t)d->H * d->P + 2 * (size_t)d->N;
	float *xc = malloc((B * C ? B * C : 1) * sizeof(float));
	if (!xc) return 1;
	step_args a = {*d, zxbcdt, conv, convw, convb, dtb, alog, D, normw, ssm, out, conv2, ssm2, xc};
	if (B >= stepRowsAlone) {
		par(ctx, row_step_task, B, &a);
	} else {
		par(ctx, conv_step_task, B, &a);
		par(ctx, head_step_task, B * (size_t)d->H, &a);
		par(ctx, gate_step_task, B, &a);
	}
	free(xc);
	return 0;
}

// ---- one residual block's decoding step ----
//
// nss_block_step is a whole block of the step graph in one call: u =
// RMSNorm(x)·norm_w, zxbcdt = u·W_inᵀ, the mixer step (nss_mixer_step), and x' =
// x + g·W_outᵀ. At a small batch a step's time is that of reading the
// weights, so the projections take them packed in panels of
// NSS_BLOCK_PANEL output columns, (⌈O/16⌉, I, 16) with zero rows past O: a
// panel is one contiguous stream that serves every batch row, its columns
// sum in vector lanes (no horizontal reductions), and the panels are the
// tasks that threads share.

typedef float blk_vec __attribute__((vector_size(NSS_BLOCK_PANEL * sizeof(float))));

typedef struct {
	const float *Wp, *X, *add;
	float *Y;
	size_t O, I, B;
} blk_gemv_args;

// panel_row is one batch row's product with a panel, Σ_k x[k]·w[k][·], in
// four partial sums (k mod 4) so that four chains of additions overlap.
static inline __attribute__((always_inline)) void panel_row(const float *restrict w, const float *restrict x, size_t I,
							     blk_vec *restrict out) {
	enum { T = NSS_BLOCK_PANEL };
	blk_vec s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, v;
	size_t k = 0;
	for (; k + 4 <= I; k += 4) {
		memcpy(&v, w + k * T, sizeof v), s0 += x[k] * v;
		memcpy(&v, w + (k + 1) * T, sizeof v), s1 += x[k + 1] * v;
		memcpy(&v, w + (k + 2) * T, sizeof v), s2 += x[k + 2] * v;
		memcpy(&v, w + (k + 3) * T, sizeof v), s3 += x[k + 3] * v;
	}
	for (; k < I; k++) memcpy(&v, w + k * T, sizeof v), s0 += x[k] * v;
	*out = (s0 + s1) + (s2 + s3);
}

// panel_rows is R batch rows' products with a panel in one pass over it
// (R a constant where it is called: the sums stay in registers), each in
// two partial sums (k even, k odd), so that 2R chains of additions overlap.
static inline __attribute__((always_inline)) void panel_rows(const float *restrict w, const float *restrict X, size_t I, int R,
							      blk_vec *restrict out) {
	enum { T = NSS_BLOCK_PANEL };
	blk_vec s[8] = {{0}}, t[8] = {{0}}, v0, v1;
	size_t k = 0;
	for (; k + 2 <= I; k += 2) {
		memcpy(&v0, w + k * T, sizeof v0);
		memcpy(&v1, w + (k + 1) * T, sizeof v1);
		for (int r = 0; r < R; r++) s[r] += X[r * I + k] * v0, t[r] += X[r * I + k + 1] * v1;
	}
	if (k < I) {
		memcpy(&v0, w + k * T, sizeof v0);
		for (int r = 0; r < R; r++) s[r] += X[r * I + k] * v0;
	}
	for (int r = 0; r < R; r++) out[r] = s[r] + t[r];
}

// blk_panel_task computes panel p's columns of Y = X·W (+ add) for every
// batch row: Wp (⌈O/16⌉, I, 16), X (B, I), Y and add (B, O). Rows go eight,
// then four at a time through one pass over the panel, the last ones one by
// one.
HOT static void blk_panel_task(void *user, size_t p) {
	const blk_gemv_args *a = user;
	enum { T = NSS_BLOCK_PANEL };
	size_t I = a->I, j0 = p * T, n = a->O - j0 < T ? a->O - j0 : T;
	const float *w = a->Wp + p * I * T;
	blk_vec s[8];
	for (size_t b = 0; b < a->B;) {
		size_t R = a->B - b >= 8 ? 8 : a->B - b >= 4 ? 4 : 1;
		if (R == 8)
			panel_rows(w, a->X + b * I, I, 8, s);
		else if (R == 4)
			panel_rows(w, a->X + b * I, I, 4, s);
		else
			panel_row(w, a->X + b * I, I, s);
		for (size_t r = 0; r < R; r++, b++) {
			float *y = a->Y + b * a->O + j0;
			const float *add = a->add ? a->add + b * a->O + j0 : NULL;
			for (size_t j = 0; j < n; j++) y[j] = add ? add[j] + s[r][j] : s[r][j];
		}
	}
}

static void blk_gemv(const float *Wp, const float *X, const float *add, float *Y, size_t O, size_t I, size_t B, nss_par par,
		     void *ctx) {
	blk_gemv_args a = {Wp, X, add, Y, O, I, B};
	par(ctx, blk_panel_task, (O + NSS_BLOCK_PANEL - 1) / NSS_BLOCK_PANEL, &a);
}

int nss_block_step(const nss_block_dims *bd, const float *x, const float *normw, const float *inwp, const float *conv,
		   const float *convw, const float *convb, const float *dtb, const float *alog, const float *D,
		   const float *gnormw, const float *ssm, const float *outwp, float *xout, float *conv2, float *ssm2,
		   nss_par par, void *ctx) {
	const nss_step_dims *d = &bd->step;
	size_t B = d->B, Dm = bd->D, di = (size_t)d->H * d->P, width = 2 * di + 2 * (size_t)d->N + d->H;
	float *u = malloc((B * Dm + B * width + B * di) * sizeof(float));
	if (!u) return 1;
	float *zx = u + B * Dm, *g = zx + B * width;
	nss_norm_dims nd = {d->B, bd->D, bd->eps};
	nss_norm_fwd(&nd, x, normw, u, par, ctx);
	blk_gemv(inwp, u, NULL, zx, width, Dm, B, par, ctx);
	int fail = nss_mixer_step(d, zx, conv, convw, convb, dtb, alog, D, gnormw, ssm, g, conv2, ssm2, par, ctx);
	if (!fail) blk_gemv(outwp, g, x, xout, Dm, di, B, par, ctx);
	free(u);
	return fail;
}

// ---- the causal depthwise convolution with silu (training and prefill) ----
//
// With full = [state (W columns), x (L columns)] over time, channel c:
// y[t][c] = silu(bias[c] + Σ_k w[c][k]·full[t+1+k][c]) and the next state is
// full's last W columns. x and y are (B, L, C) with channels contiguous, so
// the kernels stream over whole rows of C channels: every inner loop runs
// over the channels, with the weights transposed to (W, C) and the state to
// (B, W, C) once per call. Tasks own (batch row, tile of convTile time
// steps); in the backward each task recomputes the W − 1 steps of da after
// its tile and sums its own rows of dw and dbias into a partial sum of its
// own, which are added up in task order afterwards (nothing is shared
// between threads, and the result does not depend on their number).

enum { convTile = 64 };

typedef struct {
	nss_conv_dims d;
	const float *x, *bias, *dy, *dnext;
	const float *wt, *st; // weights (W, C), state (B, W, C), both transposed
	float *y, *dx, *dstate;
	float *part; // (tasks, W + 1, C): each task's dw rows, then its dbias
	int fail;
} conv_args;

// full_row is column j of full for row b: all C channels, in x or in the
// transposed state.
static inline const float *full_row(const conv_args *a, size_t b, size_t j) {
	const nss_conv_dims *d = &a->d;
	size_t W = d->W, C = d->C;
	if (j >= W) return a->x + (b * d->L + (j - W)) * C;
	return a->st + (b * W + j) * C;
}

// conv4_row writes out[i] = (bias ? bias[i] : 0) + Σ_k wt[k·C + i]·r_k[i]
// over four rows r_0…r_3 of C channels, the sum in registers: the
// convolution of width 4 (the presets' d_conv) in one pass, forwards and
// backwards.
static inline void conv4_row(size_t C, const float *restrict wt, const float *restrict r0, const float *restrict r1,
			     const float *restrict r2, const float *restrict r3, const float *restrict bias,
			     float *restrict out) {
	for (size_t i = 0; i < C; i++) {
		float acc = bias ? bias[i] : 0.0f;
		out[i] = acc + wt[i] * r0[i] + wt[C + i] * r1[i] + wt[2 * C + i] * r2[i] + wt[3 * C + i] * r3[i];
	}
}

// conv4_dw adds one step's weight and bias gradient terms of a width-4
// convolution: dw_k[i] += r[i]·f_k[i], db[i] += r[i].
static inline void conv4_dw(size_t C, const float *restrict r, const float *restrict f0, const float *restrict f1,
			    const float *restrict f2, const float *restrict f3, float *restrict dw0, float *restrict dw1,
			    float *restrict dw2, float *restrict dw3, float *restrict db) {
	for (size_t i = 0; i < C; i++) {
		dw0[i] += r[i] * f0[i];
		dw1[i] += r[i] * f1[i];
		dw2[i] += r[i] * f2[i];
		dw3[i] += r[i] * f3[i];
		db[i] += r[i];
	}
}

// conv_row fills pre[c] = bias[c] + Σ_k w[c][k]·full[t+1+k][c] for row b.
// The common width 4 is one pass over the channels, the sum in registers.
static inline void conv_row(const conv_args *a, size_t b, size_t t, float *pre) {
	size_t C = a->d.C, W = a->d.W;
	const float *bias = a->bias, *wt = a->wt;
	if (W == 4) {
		conv4_row(C, wt, full_row(a, b, t + 1), full_row(a, b, t + 2), full_row(a, b, t + 3), full_row(a, b, t + 4),
			  bias, pre);
		return;
	}
	memcpy(pre, bias, C * sizeof(float));
	for (size_t k = 0; k < W; k++) {
		const float *f = full_row(a, b, t + 1 + k), *wk = wt + k * C;
		for (size_t i = 0; i < C; i++) pre[i] += wk[i] * f[i];
	}
}

static inline size_t conv_tiles(const nss_conv_dims *d) { return ((size_t)d->L + convTile - 1) / convTile; }

HOT static void conv_fwd_task(void *user, size_t task) {
	conv_args *a = user;
	const nss_conv_dims *d = &a->d;
	size_t nt = conv_tiles(d), b = task / nt, t0 = task % nt * convTile, t1 = t0 + convTile, C = d->C;
	if (t1 > (size_t)d->L) t1 = d->L;
	for (size_t t = t0; t < t1; t++) {
		float *yr = a->y + (b * d->L + t) * C;
		conv_row(a, b, t, yr);
		for (size_t i = 0; i < C; i++) yr[i] = yr[i] * sigm(yr[i]);
	}
}

// conv_bwd_task handles the tile of one task: da = dy·silu'(pre) for its
// steps and the W − 1 after them, then dfull[j] = Σ_k da[j−1−k]·w[k]
// (+ dnext[j−L] for j ≥ L) for the columns j = t + W of its steps (dx) and,
// in the first tile, for j < W (dstate), and its partial dw and dbias.
HOT static void conv_bwd_task(void *user, size_t task) {
	conv_args *a = user;
	const nss_conv_dims *d = &a->d;
	size_t nt = conv_tiles(d), b = task / nt, t0 = task % nt * convTile, L = d->L, C = d->C, W = d->W;
	size_t t1 = t0 + convTile < L ? t0 + convTile : L, te = t1 + W - 1 < L ? t1 + W - 1 : L;
	float *da = malloc(((te - t0) + 1) * C * sizeof(float)), *acc = da + (te - t0) * C;
	if (!da) {
		a->fail = 1;
		return;
	}
	// da = dy · silu'(pre), silu'(v) = s·(1 + v·(1 − s))
	for (size_t t = t0; t < te; t++) {
		float *r = da + (t - t0) * C;
		const float *g = a->dy + (b * L + t) * C;
		conv_row(a, b, t, r);
		for (size_t i = 0; i < C; i++) {
			float s = sigm(r[i]);
			r[i] = g[i] * s * (1.0f + r[i] * (1.0f - s));
		}
	}
	size_t j0 = t0 == 0 ? 0 : t0 + W, j1 = t1 + W;
	for (size_t j = j0; j < j1; j++) {
		if (W == 4 && j >= 4 + t0 && j - 1 < L) { // all four rows of da there
			const float *r0 = da + (j - 1 - t0) * C;
			conv4_row(C, a->wt, r0, r0 - C, r0 - 2 * C, r0 - 3 * C, NULL, acc);
		} else {
			memset(acc, 0, C * sizeof(float));
			for (size_t k = 0; k < W; k++) {
				if (j < 1 + k || j - 1 - k >= L) continue;
				const float *r = da + (j - 1 - k - t0) * C, *wk = a->wt + k * C;
				for (size_t i = 0; i < C; i++) acc[i] += r[i] * wk[i];
			}
		}
		if (j >= L)
			for (size_t i = 0; i < C; i++) acc[i] += a->dnext[(b * C + i) * W + (j - L)];
		if (j >= W)
			memcpy(a->dx + (b * L + (j - W)) * C, acc, C * sizeof(float));
		else
			for (size_t i = 0; i < C; i++) a->dstate[(b * C + i) * W + j] = acc[i];
	}
	float *part = a->part + task * (W + 1) * C, *db = part + W * C;
	memset(part, 0, (W + 1) * C * sizeof(float));
	for (size_t t = t0; t < t1; t++) {
		const float *restrict r = da + (t - t0) * C;
		if (W == 4) {
			conv4_dw(C, r, full_row(a, b, t + 1), full_row(a, b, t + 2), full_row(a, b, t + 3),
				 full_row(a, b, t + 4), part, part + C, part + 2 * C, part + 3 * C, db);
			continue;
		}
		for (size_t i = 0; i < C; i++) db[i] += r[i];
		for (size_t k = 0; k < W; k++) {
			const float *f = full_row(a, b, t + 1 + k);
			float *dwk = part + k * C;
			for (size_t i = 0; i < C; i++) dwk[i] += r[i] * f[i];
		}
	}
	free(da);
}

// conv_setup transposes the weights to (W, C) and the state to (B, W, C)
// into one buffer, which the caller frees; NULL when memory ran out.
static float *conv_setup(const nss_conv_dims *d, const float *w, const float *state, conv_args *a) {
	size_t B = d->B, C = d->C, W = d->W;
	float *buf = malloc((W * C + B * W * C) * sizeof(float));
	if (!buf) return NULL;
	float *wt = buf, *st = buf + W * C;
	for (size_t c = 0; c < C; c++)
		for (size_t k = 0; k < W; k++) wt[k * C + c] = w[c * W + k];
	for (size_t b = 0; b < B; b++)
		for (size_t c = 0; c < C; c++)
			for (size_t k = 0; k < W; k++) st[(b * W + k) * C + c] = state[(b * C + c) * W + k];
	a->wt = wt;
	a->st = st;
	return buf;
}

int nss_conv_fwd(const nss_conv_dims *d, const float *x, const float *state, const float *w, const float *bias,
		 float *y, float *next, nss_par par, void *ctx) {
	conv_args a = {.d = *d, .x = x, .bias = bias, .y = y};
	float *buf = conv_setup(d, w, state, &a);
	if (!buf) return 1;
	if (d->L > 0) par(ctx, conv_fwd_task, (size_t)d->B * conv_tiles(d), &a);
	size_t C = d->C, W = d->W;
	for (size_t b = 0; b < (size_t)d->B; b++)
		for (size_t k = 0; k < W; k++) {
			const float *f = full_row(&a, b, d->L + k);
			for (size_t c = 0; c < C; c++) next[(b * C + c) * W + k] = f[c];
		}
	free(buf);
	return a.fail;
}

int nss_conv_bwd(const nss_conv_dims *d, const float *x, const float *state, const float *w, const float *bias,
		 const float *dy, const float *dnext, float *dx, float *dstate, float *dw, float *dbias, nss_par par,
		 void *ctx) {
	size_t B = d->B, C = d->C, W = d->W, T = B * conv_tiles(d);
	conv_args a = {.d = *d, .x = x, .bias = bias, .dy = dy, .dnext = dnext, .dx = dx, .dstate = dstate};
	float *buf = conv_setup(d, w, state, &a);
	a.part = malloc((T ? T : 1) * (W + 1) * C * sizeof(float));
	if (!buf || !a.part) {
		free(buf);
		free(a.part);
		return 1;
	}
	if (d->L > 0) {
		par(ctx, conv_bwd_task, T, &a);
	} else { // no steps: the state passes straight through
		memcpy(dstate, dnext, B * C * W * sizeof(float));
	}
	for (size_t c = 0; c < C; c++) {
		for (size_t k = 0; k < W; k++) dw[c * W + k] = 0;
		dbias[c] = 0;
	}
	for (size_t t = 0; t < T; t++) {
		const float *p = a.part + t * (W + 1) * C;
		for (size_t c = 0; c < C; c++) {
			for (size_t k = 0; k < W; k++) dw[c * W + k] += p[k * C + c];
			dbias[c] += p[W * C + c];
		}
	}
	free(buf);
	free(a.part);
	return a.fail;
}

// ---- RMSNorm (every norm of the model) ----
//
// y = x / √(mean(x²) + eps) ⊙ w over the last axis of rows × D. The
// backward, with r = 1/√(mean(x²) + eps) and g = dy ⊙ w:
// dx = r·g − x·r³·(g·x)/D, and dw = Σ_rows dy ⊙ x·r, summed per task
// into its own row of partial sums and added up afterwards.

enum { normRowsPerTask = 64 };

typedef struct {
	nss_norm_dims d;
	const float *x, *w, *dy;
	float *y, *dx, *dwpart;
} norm_args;

HOT static void norm_fwd_task(void *user, size_t task) {
	norm_args *a = user;
	size_t D = a->d.D, r0 = task * normRowsPerTask, r1 = r0 + normRowsPerTask;
	if (r1 > (size_t)a->d.rows) r1 = a->d.rows;
	for (size_t r = r0; r < r1; r++) {
		const float *x = a->x + r * D;
		float *y = a->y + r * D;
		float inv = 1.0f / sqrtf(dot_f32(x, x, D) / (float)D + a->d.eps);
		for (size_t i = 0; i < D; i++) y[i] = x[i] * inv * a->w[i];
	}
}

HOT static void norm_bwd_task(void *user, size_t task) {
	norm_args *a = user;
	size_t D = a->d.D, r0 = task * normRowsPerTask, r1 = r0 + normRowsPerTask;
	if (r1 > (size_t)a->d.rows) r1 = a->d.rows;
	float *dw = a->dwpart + task * D;
	memset(dw, 0, D * sizeof(float));
	for (size_t r = r0; r < r1; r++) {
		const float *x = a->x + r * D, *dy = a->dy + r * D;
		float *dx = a->dx + r * D;
		float inv = 1.0f / sqrtf(dot_f32(x, x, D) / (float)D + a->d.eps);
		float gx = wdot(dy, a->w, x, D);
		float k = inv * inv * inv * gx / (float)D;
		for (size_t i = 0; i < D; i++) {
			dx[i] = inv * dy[i] * a->w[i] - x[i] * k;
			dw[i] += dy[i] * x[i] * inv;
		}
	}
}

static size_t norm_tasks(const nss_norm_dims *d) { return ((size_t)d->rows + normRowsPerTask - 1) / normRowsPerTask; }

int nss_norm_fwd(const nss_norm_dims *d, const float *x, const float *w, float *y, nss_par par, void *ctx) {
	norm_args a = {*d, x, w, NULL, y, NULL, NULL};
	par(ctx, norm_fwd_task, norm_tasks(d), &a);
	return 0;
}

int nss_norm_bwd(const nss_norm_dims *d, const float *x, const float *w, const float *dy, float *dx, float *dw,
		 nss_par par, void *ctx) {
	size_t T = norm_tasks(d), D = d->D;
	float *part = malloc((T ? T : 1) * D * sizeof(float));
	if (!part) return 1;
	norm_args a = {*d, x, w, dy, NULL, dx, part};
	par(ctx, norm_bwd_task, T, &a);
	for (size_t i = 0; i < D; i++) {
		float s = 0;
		for (size_t t = 0; t < T; t++) s += part[t * D + i];
		dw[i] = s;
	}
	free(part);
	return 0;
}

// ---- the output gate of a mixer: D·x skip, gated RMSNorm (training and prefill) ----
//
// Per row of D = H·P values (head h owns channels h·P…h·P+P−1):
// q = y + Dskip_h·x, g = q ⊙ silu(z), out = g / √(mean(g²) + eps) ⊙ w (gate
// first). The backward is RMSNorm's for g, then through the gate and the
// skip: with s = σ(z), dq = dg·z·s, dz = dg·q·s·(1 + z·(1 − s)), dy = dq,
// dx = Dskip_h·dq and dDskip_h = Σ dq·x. dw and dDskip are summed per task
// into partial sums of their own, added up in task order afterwards.

typedef struct {
	nss_norm_dims d;
	size_t P; // channels per head
	const float *y, *x, *skip, *z, *w, *dout;
	float *out, *dy, *dx, *dz, *dwpart, *dskippart;
	int fail;
} gnorm_args;

// gate_row fills q = y + Dskip·x, s = σ(z) and g = q ⊙ z ⊙ s for one row.
static inline void gate_row(const gnorm_args *a, size_t r, float *restrict q, float *restrict s, float *restrict g) {
	size_t D = a->d.D, P = a->P;
	const float *y = a->y + r * D, *x = a->x + r * D, *z = a->z + r * D;
	for (size_t c0 = 0; c0 < D; c0 += P) {
		float k = a->skip[c0 / P];
		for (size_t i = c0; i < c0 + P; i++) {
			q[i] = y[i] + k * x[i];
			s[i] = sigm(z[i]);
			g[i] = q[i] * z[i] * s[i];
		}
	}
}

HOT static void gnorm_fwd_task(void *user, size_t task) {
	gnorm_args *a = user;
	size_t D = a->d.D, r0 = task * normRowsPerTask, r1 = r0 + normRowsPerTask;
	if (r1 > (size_t)a->d.rows) r1 = a->d.rows;
	float *q = malloc(2 * D * sizeof(float)), *s = q + D;
	if (!q) {
		a->fail = 1;
		return;
	}
	for (size_t r = r0; r < r1; r++) {
		float *out = a->out + r * D;
		gate_row(a, r, q, s, out);
		float inv = 1.0f / sqrtf(dot_f32(out, out, D) / (float)D + a->d.eps);
		for (size_t i = 0; i < D; i++) out[i] = out[i] * inv * a->w[i];
	}
	free(q);
}

// gnorm_bwd_row stores one row's dq (as dy) and dz and adds its dw terms,
// from the row's q, s = σ(z), g, r = 1/√(mean(g²) + eps) and
// k = r³·(dout·w·g)/D: dg = r·dout ⊙ w − k·g. The pointers do not alias
// (restrict), which lets the compiler vectorise the loop without run-time
// overlap checks.
static inline void gnorm_bwd_row(size_t D, const float *restrict q, const float *restrict z, const float *restrict s,
				 const float *restrict g, const float *restrict w, const float *restrict dout, float inv,
				 float k, float *restrict dy, float *restrict dz, float *restrict dw) {
	for (size_t i = 0; i < D; i++) {
		float dg = inv * dout[i] * w[i] - g[i] * k;
		dw[i] += dout[i] * g[i] * inv;
		dy[i] = dg * z[i] * s[i];
		dz[i] = dg * q[i] * s[i] * (1.0f + z[i] * (1.0f - s[i]));
	}
}

HOT static void gnorm_bwd_task(void *user, size_t task) {
	gnorm_args *a = user;
	size_t D = a->d.D, P = a->P, r0 = task * normRowsPerTask, r1 = r0 + normRowsPerTask;
	if (r1 > (size_t)a->d.rows) r1 = a->d.rows;
	float *dw = a->dwpart + task * D, *dsk = a->dskippart + task * (D / P), *q = malloc(3 * D * sizeof(float));
	if (!q) {
		a->fail = 1;
		return;
	}
	float *s = q + D, *g = s + D;
	memset(dw, 0, D * sizeof(float));
	memset(dsk, 0, D / P * sizeof(float));
	const float *w = a->w;
	for (size_t r = r0; r < r1; r++) {
		const float *z = a->z + r * D, *x = a->x + r * D, *dout = a->dout + r * D;
		float *dy = a->dy + r * D, *dx = a->dx + r * D;
		gate_row(a, r, q, s, g);
		float inv = 1.0f / sqrtf(dot_f32(g, g, D) / (float)D + a->d.eps);
		float gx = wdot(dout, w, g, D);
		gnorm_bwd_row(D, q, z, s, g, w, dout, inv, inv * inv * inv * gx / (float)D, dy, a->dz + r * D, dw);
		for (size_t c0 = 0; c0 < D; c0 += P) {
			float k = a->skip[c0 / P];
			for (size_t i = c0; i < c0 + P; i++) dx[i] = k * dy[i];
			dsk[c0 / P] += dot_f32(dy + c0, x + c0, P);
		}
	}
	free(q);
}

int nss_gnorm_fwd(const nss_norm_dims *d, int H, const float *y, const float *x, const float *skip, const float *z,
		  const float *w, float *out, nss_par par, void *ctx) {
	gnorm_args a = {.d = *d, .P = (size_t)(d->D / H), .y = y, .x = x, .skip = skip, .z = z, .w = w, .out = out};
	par(ctx, gnorm_fwd_task, norm_tasks(d), &a);
	return a.fail;
}

int nss_gnorm_bwd(const nss_norm_dims *d, int H, const float *y, const float *x, const float *skip, const float *z,
		  const float *w, const float *dout, float *dy, float *dx, float *dskip, float *dz, float *dw, nss_par par,
		  void *ctx) {
	size_t T = norm_tasks(d), D = d->D;
	float *part = malloc((T ? T : 1) * (D + H) * sizeof(float));
	if (!part) return 1;
	gnorm_args a = {.d = *d, .P = D / H, .y = y, .x = x, .skip = skip, .z = z, .w = w, .dout = dout, .dy = dy, .dx = dx,
			.dz = dz, .dwpart = part, .dskippart = part + T * D};
	par(ctx, gnorm_bwd_task, T, &a);
	for (size_t i = 0; i < D; i++) {
		float s = 0;
		for (size_t t = 0; t < T; t++) s += part[t * D + i];
		dw[i] = s;
	}
	for (int h = 0; h < H; h++) {
		float s = 0;
		for (size_t t = 0; t < T; t++) s += a.dskippart[t * H + h];
		dskip[h] = s;
	}
	free(part);
	return a.fail;
}

// ---- the softmax cross-entropy of the logits (the training loss) ----
//
// nll = log Σ_v exp(x_v) − x_target per row of V logits, 0 where the target
// is outside 0…V−1 (the standard graph's one-hot row is then all zeros);
// the backward is dx = dnll·(softmax(x) − onehot(target)).

enum { xentRowsPerTask = 64 };

typedef struct {
	int64_t rows;
	size_t V;
	const float *x, *dnll;
	const int64_t *target;
	float *nll, *dx;
} xent_args;

// row_max is the maximum of one row of V ≥ 1 values and row_expsum
// Σ exp(x − m), storing the terms in e when it is not NULL; both keep eight
// partial results so that the loops vectorise without reassociating
// floating-point sums behind the compiler's back.
static inline float row_max(const float *x, size_t V) {
	float mx[8];
	for (int j = 0; j < 8; j++) mx[j] = x[0];
	size_t i = 0;
	for (; i + 8 <= V; i += 8)
		for (int j = 0; j < 8; j++) mx[j] = x[i + j] > mx[j] ? x[i + j] : mx[j];
	float m = x[0];
	for (; i < V; i++) m = x[i] > m ? x[i] : m;
	for (int j = 0; j < 8; j++) m = mx[j] > m ? mx[j] : m;
	return m;
}

static inline float row_expsum(const float *x, size_t V, float m, float *e) {
	float acc[8] = {0}, s = 0;
	size_t i = 0;
	for (; i + 8 <= V; i += 8)
		for (int j = 0; j < 8; j++) {
			float v = nss_expf(x[i + j] - m);
			if (e) e[i + j] = v;
			acc[j] += v;
		}
	for (; i < V; i++) {
		float v = nss_expf(x[i] - m);
		if (e) e[i] = v;
		s += v;
	}
	for (int j = 0; j < 8; j++) s += acc[j];
	return s;
}

static inline size_t xent_rows(const xent_args *a, size_t task, size_t *r1) {
	size_t r0 = task * xentRowsPerTask;
	*r1 = r0 + xentRowsPerTask < (size_t)a->rows ? r0 + xentRowsPerTask : (size_t)a->rows;
	return r0;
}

HOT static void xent_fwd_task(void *user, size_t task) {
	xent_args *a = user;
	size_t r1, V = a->V;
	for (size_t r = xent_rows(a, task, &r1); r < r1; r++) {
		int64_t t = a->target[r];
		if (t < 0 || (uint64_t)t >= V) {
			a->nll[r] = 0;
			continue;
		}
		const float *x = a->x + r * V;
		float m = row_max(x, V);
		a->nll[r] = m + logf(row_expsum(x, V, m, NULL)) - x[t];
	}
}

HOT static void xent_bwd_task(void *user, size_t task) {
	xent_args *a = user;
	size_t r1, V = a->V;
	for (size_t r = xent_rows(a, task, &r1); r < r1; r++) {
		const float *x = a->x + r * V;
		float *dx = a->dx + r * V, g = a->dnll[r];
		int64_t t = a->target[r];
		if (t < 0 || (uint64_t)t >= V) {
			memset(dx, 0, V * sizeof(float));
			continue;
		}
		float k = g / row_expsum(x, V, row_max(x, V), dx); // dx holds exp(x − max)
		for (size_t i = 0; i < V; i++) dx[i] *= k;
		dx[t] -= g;
	}
}

static size_t xent_tasks(int64_t rows) { return ((size_t)rows + xentRowsPerTask - 1) / xentRowsPerTask; }

int nss_xent_fwd(int64_t rows, int V, const float *x, const int64_t *target, float *nll, nss_par par, void *ctx) {
	xent_args a = {.rows = rows, .V = (size_t)V, .x = x, .target = target, .nll = nll};
	par(ctx, xent_fwd_task, xent_tasks(rows), &a);
	return 0;
}

int nss_xent_bwd(int64_t rows, int V, const float *x, const int64_t *target, const float *dnll, float *dx, nss_par par,
		 void *ctx) {
	xent_args a = {.rows = rows, .V = (size_t)V, .x = x, .target = target, .dnll = dnll, .dx = dx};
	par(ctx, xent_bwd_task, xent_tasks(rows), &a);
	return 0;
}
