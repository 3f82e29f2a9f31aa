// CPU kernels of netssm's custom-op domain: the chunked SSD scan, its
// backward, and the one-token mixer step. Plain C that the compiler
// vectorises; on x86-64 the hot functions are also compiled for x86-64-v3
// (AVX2, FMA) and the loader picks that copy at run time when the CPU has
// it (GCC/Clang target_clones), so the binary still runs on any x86-64.

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fused_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NSS_NO_CLONES)
#define HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HOT
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

#define REAL float
#define SUF _f32
#define EXPR nss_expf
#include "fused_ssd.h"
#undef REAL
#undef SUF
#undef EXPR

#define REAL double
#define SUF _f64
#define EXPR exp
#include "fused_ssd.h"
#undef REAL
#undef SUF
#undef EXPR

// ---- the one-token mixer step ----

typedef struct {
	nss_step_dims d;
	const float *zxbcdt, *conv, *convw, *convb, *dtb, *alog, *D, *normw, *ssm;
	float *out, *conv2, *ssm2;
	int fail;
} step_args;

static inline float silu(float v) { return v / (1.0f + expf(-v)); }
static inline float softplus(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

// dot8 is a dot product in eight partial sums, which vectorises without
// reassociating floating-point sums behind the compiler's back.
static inline float dot8(const float *a, const float *b, size_t n) {
	float acc[8] = {0};
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
	float s = 0;
	for (; i < n; i++) s += a[i] * b[i];
	for (int j = 0; j < 8; j++) s += acc[j];
	return s;
}

// step_task runs one batch row: conv window shift and conv + silu, the SSM
// state update and output (+ D·x), the gated RMSNorm.
HOT static void step_task(void *user, size_t b) {
	step_args *a = user;
	const nss_step_dims *d = &a->d;
	size_t H = d->H, P = d->P, N = d->N, K = d->K, di = H * P, C = di + 2 * N, width = 2 * di + 2 * N + H;
	const float *zx = a->zxbcdt + b * width, *z = zx, *xbc = zx + di, *dtraw = zx + di + C;
	const float *cs = a->conv + b * C * K;
	float *cs2 = a->conv2 + b * C * K, *out = a->out + b * di;
	float *xc = malloc(C * sizeof(float));
	if (!xc) {
		a->fail = 1;
		return;
	}
	for (size_t c = 0; c < C; c++) {
		const float *row = cs + c * K, *w = a->convw + c * K;
		float *row2 = cs2 + c * K, acc = a->convb[c];
		for (size_t k = 0; k + 1 < K; k++) row2[k] = row[k + 1];
		row2[K - 1] = xbc[c];
		for (size_t k = 0; k < K; k++) acc += row2[k] * w[k];
		xc[c] = silu(acc);
	}
	const float *x = xc, *Bm = xc + di, *Cm = xc + di + N;
	for (size_t h = 0; h < H; h++) {
		float dt = softplus(dtraw[h] + a->dtb[h]);
		float dA = expf(dt * -expf(a->alog[h]));
		const float *s = a->ssm + (b * H + h) * P * N;
		float *s2 = a->ssm2 + (b * H + h) * P * N;
		for (size_t p = 0; p < P; p++) {
			float k = dt * x[h * P + p];
			const float *sp = s + p * N;
			float *sp2 = s2 + p * N;
			for (size_t n = 0; n < N; n++) sp2[n] = sp[n] * dA + k * Bm[n];
			out[h * P + p] = dot8(sp2, Cm, N) + a->D[h] * x[h * P + p];
		}
	}
	float ms = 0;
	for (size_t i = 0; i < di; i++) {
		out[i] *= silu(z[i]);
		ms += out[i] * out[i];
	}
	float inv = 1.0f / sqrtf(ms / (float)di + 1e-5f);
	for (size_t i = 0; i < di; i++) out[i] = out[i] * inv * a->normw[i];
	free(xc);
}

int nss_mixer_step(const nss_step_dims *d, const float *zxbcdt, const float *conv, const float *convw,
		   const float *convb, const float *dtb, const float *alog, const float *D, const float *normw,
		   const float *ssm, float *out, float *conv2, float *ssm2, nss_par par, void *ctx) {
	step_args a = {*d, zxbcdt, conv, convw, convb, dtb, alog, D, normw, ssm, out, conv2, ssm2, 0};
	par(ctx, step_task, (size_t)d->B, &a);
	return a.fail;
}
