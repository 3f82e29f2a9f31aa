// The SSD scan kernels of netssm's custom-op domain, written once for a real
// type: fused_kernels.c includes this file twice, with REAL = float (the
// kernels ONNX Runtime runs) and REAL = double (the float64 form the tests
// check against finite differences). SUF names the instance, EXPR its exp.
//
// Shapes (row-major): x (B,L,H,P), dt (B,L,H), A (H), Bm and Cm (B,L,N),
// states (B,H,P,N). One group: every head reads the same Bm and Cm.
//
// The scan works chunk by chunk (chunk length Q, the last chunk shorter when
// Q does not divide L), in passes that never hold a (Q × Q) matrix per head
// and chunk at once:
//   1. per (batch, chunk): CB[t][s] = Cm_t·Bm_s (shared by the heads);
//   2. per (batch, head): the state entering each chunk, by the recurrence
//      between chunks (H_{c+1} = exp(a_c)·H_c + S_c), and in the forward
//      each chunk's outputs on the way; the backward runs the adjoint of the
//      state backwards through the chunks here (and the states themselves
//      only when not given them);
//   3. backward, per (batch, chunk): every head's gradients.
// Inside a task each chunk's (Q × Q) decay matrix lives in one scratch
// buffer, so the working set is a few chunk-sized blocks. States are kept
// transposed, (N, P), inside the kernels so that every inner loop is an axpy
// over P or N that the compiler vectorises.

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUF)

// ssd_args holds every pointer and size of one call.
typedef struct {
	nss_dims d;
	const REAL *x, *dt, *A, *Bm, *Cm, *h0, *dy, *dfinal;
	const REAL *yfwd; // the forward's y, or NULL (backward only)
	REAL *y, *final;
	REAL *dx, *ddt, *dA, *dBm, *dCm, *dh0;
	REAL *cb;     // (B, nc, Q, Q): CB of every chunk (lower triangle)
	REAL *states; // (B, H, nc, N, P): state entering each chunk
	int own_states; // states was allocated here (not the caller's)
	REAL *adj;    // (B, H, nc, N, P): adjoint of the state leaving each chunk
	REAL *dApart; // (B, nc, H): dA of each chunk, summed afterwards
	int fail;     // set by a task whose scratch allocation failed
} FN(ssd_args);

static inline size_t FN(chunk_len)(const nss_dims *d, int c) {
	int q = d->L - c * d->Q;
	return (size_t)(q < d->Q ? q : d->Q);
}

// gemm adds A·B to C: C[i·ldc + j] += Σ_k A(i, k)·B[k·ldb + j] for i < M,
// j < Nn, k < K, where A(i, k) = A[i·ars + k·acs] (so A may be read
// transposed). Blocks of 4 rows × two vectors of columns (16 floats with
// 256-bit vectors, 32 with 512-bit ones) accumulate in registers, which is
// what makes the scan run at matrix-product speed. The flags skip what a triangle makes
// zero or unneeded; rows are taken four at a time, so a triangular A must
// hold zeros on the wrong side of its diagonal up to the next multiple of
// four, and C_LOWER may also write a few entries above the diagonal:
//   A_LOWER: A is lower triangular (row i reads k ≤ i);
//   A_UPPER: A is upper triangular (row i reads k ≥ i);
//   C_LOWER: only C's lower triangle (j ≤ i) is wanted.
#ifndef NSS_GEMM_FLAGS
#define NSS_GEMM_FLAGS
enum { A_LOWER = 1, A_UPPER = 2, C_LOWER = 4 };
#endif

// gemm_bounds gives the k range and column end of the rows [i, i + rows)
// for a product whose vectors hold vl values.
static inline void FN(gemm_bounds)(size_t i, size_t rows, size_t Nn, size_t K, int flags, size_t vl, size_t *k0,
				   size_t *k1, size_t *jend) {
	*k0 = flags & A_UPPER ? (i < K ? i : K) : 0;
	*k1 = flags & A_LOWER && i + rows < K ? i + rows : K;
	*jend = Nn;
	if (flags & C_LOWER) {
		size_t need = (i + rows + 2 * vl - 1) / (2 * vl) * (2 * vl); // whole vector blocks
		*jend = need < Nn ? need : Nn;
	}
}

#define GEMM_NAME FN(gemm_narrow)
#define GEMM_BYTES 32 // 8 floats or 4 doubles
#define GEMM_ATTR HOT
#include "fused_gemm.h"
#if NSS_WIDE_GEMM
#define GEMM_NAME FN(gemm_wide)
#define GEMM_BYTES 64 // 16 floats or 8 doubles
#define GEMM_ATTR NSS_WIDE
#include "fused_gemm.h"
#endif

// gemm is the product of the 512-bit copy where the CPU has AVX-512 and of
// the 256-bit one (compiled for x86-64-v3 and the baseline) elsewhere.
static inline void FN(gemm)(size_t M, size_t Nn, size_t K, const REAL *A, size_t ars, size_t acs, const REAL *B,
			    size_t ldb, REAL *C, size_t ldc, int flags) {
#if NSS_WIDE_GEMM
	if (nss_wide_vectors()) {
		FN(gemm_wide)(M, Nn, K, A, ars, acs, B, ldb, C, ldc, flags);
		return;
	}
#endif
	FN(gemm_narrow)(M, Nn, K, A, ars, acs, B, ldb, C, ldc, flags);
}

// transpose8 writes the 8 × 8 tile of src (row stride C) transposed to dst
// (row stride R): eight rows in, three rounds of shuffles, eight columns
// out (where the compiler has __builtin_shufflevector and REAL is float;
// else element by element).
static inline __attribute__((always_inline)) void FN(transpose8)(const REAL *restrict src, size_t C, REAL *restrict dst,
								  size_t R) {
#if NSS_SHUFFLE_TRANSPOSE
	typedef REAL v8 __attribute__((vector_size(8 * sizeof(REAL))));
	v8 r[8], t[8], u[8];
	for (int i = 0; i < 8; i++) memcpy(&r[i], src + i * C, sizeof(v8));
	for (int i = 0; i < 8; i += 2) { // interleave row pairs within 128-bit halves
		t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
		t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
	}
	for (int i = 0; i < 8; i += 4) // pairs of pairs: four rows of one column per half
		for (int j = 0; j < 2; j++) {
			u[i + 2 * j] = __builtin_shufflevector(t[i + j], t[i + j + 2], 0, 1, 8, 9, 4, 5, 12, 13);
			u[i + 2 * j + 1] = __builtin_shufflevector(t[i + j], t[i + j + 2], 2, 3, 10, 11, 6, 7, 14, 15);
		}
	for (int j = 0; j < 4; j++) { // the halves of rows 0–3 and 4–7: columns j and j + 4
		v8 lo = __builtin_shufflevector(u[j], u[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
		v8 hi = __builtin_shufflevector(u[j], u[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
		memcpy(dst + j * R, &lo, sizeof(v8));
		memcpy(dst + (j + 4) * R, &hi, sizeof(v8));
	}
#else
	for (size_t c = 0; c < 8; c++)
		for (size_t r = 0; r < 8; r++) dst[c * R + r] = src[r * C + c];
#endif
}

// transpose writes the (R, C) matrix src as (C, R), in tiles of 8 × 8.
static inline __attribute__((always_inline)) void FN(transpose)(const REAL *restrict src, size_t R, size_t C,
								 REAL *restrict dst) {
	size_t r0 = 0;
	for (; r0 + 8 <= R; r0 += 8) {
		size_t c0 = 0;
		for (; c0 + 8 <= C; c0 += 8) FN(transpose8)(src + r0 * C + c0, C, dst + c0 * R + r0, R);
		for (; c0 < C; c0++)
			for (size_t r = 0; r < 8; r++) dst[c0 * R + r0 + r] = src[(r0 + r) * C + c0];
	}
	for (; r0 < R; r0++)
		for (size_t c = 0; c < C; c++) dst[c * R + r0] = src[r0 * C + c];
}

// dot is Σ a[i]·b[i] in 16 partial sums (a vector's lanes), added pairwise
// at the end: it vectorises, where one running sum is a chain of n
// dependent additions.
static inline __attribute__((always_inline)) REAL FN(dot)(const REAL *restrict a, const REAL *restrict b, size_t n) {
	REAL acc[16] = {0}, tail = 0;
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
	for (; i < n; i++) tail += a[i] * b[i];
	for (int j = 0; j < 8; j++) acc[j] += acc[j + 8];
	for (int j = 0; j < 4; j++) acc[j] += acc[j + 4];
	return tail + (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

// Pass 1: CB[t][s] = Σ_n Cm_t[n]·Bm_s[n], one (batch, chunk) per task.
HOT static void FN(cb_task)(void *user, size_t task) {
	FN(ssd_args) *a = user;
	const nss_dims *d = &a->d;
	int nc = NCHUNKS(d), b = (int)(task / nc), c = (int)(task % nc);
	size_t q = FN(chunk_len)(d, c), N = d->N, Q = d->Q;
	const REAL *Bm = a->Bm + ((size_t)b * d->L + (size_t)c * Q) * N;
	const REAL *Cm = a->Cm + ((size_t)b * d->L + (size_t)c * Q) * N;
	REAL *cb = a->cb + ((size_t)b * nc + c) * Q * Q;
	REAL *bt = malloc(N * q * sizeof(REAL)); // Bmᵀ (N, q)
	if (!bt) {
		a->fail = 1;
		return;
	}
	for (size_t s = 0; s < q; s++)
		for (size_t n = 0; n < N; n++) bt[n * q + s] = Bm[s * N + n];
	for (size_t t = 0; t < q; t++)
		for (size_t s = 0; s < q; s++) cb[t * Q + s] = 0;
	FN(gemm)(q, q, N, Cm, N, 1, bt, q, cb, Q, C_LOWER);
	free(bt);
}

// chunk_acum fills acum[t] = Σ_{i≤t} dt_i·A_h inside chunk c of (b, h).
static inline __attribute__((always_inline)) void FN(chunk_acum)(const FN(ssd_args) *a, int b, int h, int c, size_t q, REAL *acum) {
	const nss_dims *d = &a->d;
	const REAL *dt = a->dt + ((size_t)b * d->L + (size_t)c * d->Q) * d->H + h;
	REAL Ah = a->A[h], run = 0;
	for (size_t t = 0; t < q; t++) {
		run += dt[t * d->H] * Ah;
		acum[t] = run;
	}
}

// chunk_xt fills xt (q, P) with X̃_t = dt_t·x_t of head h in chunk c.
static inline __attribute__((always_inline)) void FN(chunk_xt)(const FN(ssd_args) *a, int b, int h, int c, size_t q, REAL *xt) {
	const nss_dims *d = &a->d;
	size_t P = d->P, H = d->H, t0 = (size_t)b * d->L + (size_t)c * d->Q;
	for (size_t t = 0; t < q; t++) {
		const REAL *xs = a->x + ((t0 + t) * H + h) * P;
		REAL w = a->dt[(t0 + t) * H + h];
		for (size_t p = 0; p < P; p++) xt[t * P + p] = w * xs[p];
	}
}

// scaled_rows fills out (q, N) with k[t]·in_t (rows of stride N).
static inline __attribute__((always_inline)) void FN(scaled_rows)(const REAL *in, const REAL *k, size_t q, size_t N, REAL *out) {
	for (size_t t = 0; t < q; t++)
		for (size_t n = 0; n < N; n++) out[t * N + n] = k[t] * in[t * N + n];
}

// chunk_decays fills e[t] = exp(acum_t) and w[t] = exp(acum_last − acum_t).
static inline __attribute__((always_inline)) void FN(chunk_decays)(const REAL *acum, size_t q, REAL *e, REAL *w) {
	REAL last = acum[q - 1];
	for (size_t t = 0; t < q; t++) {
		e[t] = EXPR(acum[t]);
		w[t] = EXPR(last - acum[t]);
	}
}

// decayed_row writes out[s] = prev[s]·f for s < n, flushed to 0 below the
// smallest normal number.
static inline __attribute__((always_inline)) void FN(decayed_row)(size_t n, const REAL *restrict prev, REAL f,
								  REAL *restrict out) {
	for (size_t s = 0; s < n; s++) {
		REAL v = prev[s] * f;
		out[s] = v < TINY ? 0 : v;
	}
}

// decay_rows fills lm[t][s] = exp(acum_t − acum_s)·(cb ? cb[t][s] : 1) for
// s ≤ t and 0 for t < s < q. Row t of the decay is row t − 1 times the
// step's own decay exp(acum_t − acum_{t−1}), so a chunk takes q exps, not
// q²/2; values below the smallest normal number are flushed to 0, as exp
// of a difference under about −87 (float) or −708 (double) would be, so
// that no product sees a subnormal operand.
static inline __attribute__((always_inline)) void FN(decay_rows)(const REAL *acum, const REAL *cb, size_t q, size_t Q, REAL *lm) {
	for (size_t t = 0; t < q; t++) {
		REAL *row = lm + t * Q;
		if (t > 0) {
			FN(decayed_row)(t, row - Q, EXPR(acum[t] - acum[t - 1]), row);
			if (cb) // row t − 1 is used: it takes its CB now
				for (size_t s = 0; s < t; s++) row[s - Q] *= cb[(t - 1) * Q + s];
		}
		row[t] = 1;
		for (size_t s = t + 1; s < q; s++) row[s] = 0;
	}
	if (cb && q > 0)
		for (size_t s = 0; s < q; s++) lm[(q - 1) * Q + s] *= cb[(q - 1) * Q + s];
}

// Pass 2, one (batch, head) per task: walking the chunks in order with the
// state S (N, P) entering each, the chunk's outputs (forward; the
// backward, recomputing the states, has no y to fill) y_t = Σ_{s≤t} CB[t][s]·exp(acum_t − acum_s)·X̃_s +
// exp(acum_t)·Sᵀ·Cm_t, then S ← exp(a_last)·S + Σ_s exp(a_last − acum_s)·
// Bm_s ⊗ X̃_s. A chunk's X̃, cumulative decays and decay matrix are formed
// once for both.
HOT static void FN(scan_task)(void *user, size_t task) {
	FN(ssd_args) *a = user;
	const nss_dims *d = &a->d;
	int nc = NCHUNKS(d), b = (int)(task / d->H), h = (int)(task % d->H);
	size_t P = d->P, N = d->N, Q = d->Q, H = d->H, NP = N * P;
	REAL *acum = malloc(Q * sizeof(REAL)), *e = malloc(Q * sizeof(REAL)), *w = malloc(Q * sizeof(REAL));
	REAL *xt = malloc(Q * P * sizeof(REAL)), *m = malloc(Q * Q * sizeof(REAL)), *rows = malloc(Q * N * sizeof(REAL));
	REAL *S = malloc(NP * sizeof(REAL));
	if (!acum || !e || !w || !xt || !m || !rows || !S) {
		a->fail = 1;
		goto out;
	}
	FN(transpose)(a->h0 + task * NP, P, N, S);
	for (int c = 0; c < nc; c++) {
		if (a->states) memcpy(a->states + (task * nc + c) * NP, S, NP * sizeof(REAL));
		size_t q = FN(chunk_len)(d, c), t0 = (size_t)b * d->L + (size_t)c * Q;
		FN(chunk_acum)(a, b, h, c, q, acum);
		FN(chunk_xt)(a, b, h, c, q, xt);
		FN(chunk_decays)(acum, q, e, w);
		if (a->y) {
			FN(decay_rows)(acum, a->cb + ((size_t)b * nc + c) * Q * Q, q, Q, m);
			FN(scaled_rows)(a->Cm + t0 * N, e, q, N, rows);
			REAL *y = a->y + (t0 * H + h) * P; // rows of stride H·P
			for (size_t t = 0; t < q; t++)
				for (size_t p = 0; p < P; p++) y[t * H * P + p] = 0;
			FN(gemm)(q, P, q, m, Q, 1, xt, P, y, H * P, A_LOWER); // inside the chunk
			FN(gemm)(q, P, N, rows, N, 1, S, P, y, H * P, 0);      // from the state entering it
		}
		REAL el = e[q - 1];
		for (size_t i = 0; i < NP; i++) S[i] *= el;
		FN(scaled_rows)(a->Bm + t0 * N, w, q, N, rows);
		FN(gemm)(N, P, q, rows, 1, N, xt, P, S, P, 0); // S += (w·Bm)ᵀ·X̃
	}
	if (a->final) FN(transpose)(S, N, P, a->final + task * NP);
out:
	free(acum);
	free(e);
	free(w);
	free(xt);
	free(m);
	free(rows);
	free(S);
}

// Backward pass 2b: the adjoint of the state leaving each chunk of (b, h),
// walking the chunks backwards: G_leaving(c−1) = exp(a_last)·G +
// Σ_t exp(acum_t)·Cm_t ⊗ dy_t, from G_leaving(last) = dfinal; dh0 is the
// adjoint entering chunk 0.
HOT static void FN(adjoint_task)(void *user, size_t task) {
	FN(ssd_args) *a = user;
	const nss_dims *d = &a->d;
	int nc = NCHUNKS(d), b = (int)(task / d->H), h = (int)(task % d->H);
	size_t P = d->P, N = d->N, Q = d->Q, H = d->H, NP = N * P;
	REAL *acum = malloc(Q * sizeof(REAL)), *e = malloc(Q * sizeof(REAL)), *w = malloc(Q * sizeof(REAL));
	REAL *ce = malloc(Q * N * sizeof(REAL)), *G = malloc(NP * sizeof(REAL));
	if (!acum || !e || !w || !ce || !G) {
		a->fail = 1;
		goto out;
	}
	const REAL *df = a->dfinal + task * NP;
	for (size_t p = 0; p < P; p++)
		for (size_t n = 0; n < N; n++) G[n * P + p] = df[p * N + n];
	for (int c = nc - 1; c >= 0; c--) {
		memcpy(a->adj + (task * nc + c) * NP, G, NP * sizeof(REAL));
		size_t q = FN(chunk_len)(d, c), t0 = (size_t)b * d->L + (size_t)c * Q;
		FN(chunk_acum)(a, b, h, c, q, acum);
		FN(chunk_decays)(acum, q, e, w);
		REAL el = e[q - 1];
		for (size_t i = 0; i < NP; i++) G[i] *= el;
		FN(scaled_rows)(a->Cm + t0 * N, e, q, N, ce);
		FN(gemm)(N, P, q, ce, 1, N, a->dy + (t0 * H + h) * P, H * P, G, P, 0); // G += (e·Cm)ᵀ·dy
	}
	REAL *dh0 = a->dh0 + task * NP;
	for (size_t p = 0; p < P; p++)
		for (size_t n = 0; n < N; n++) dh0[p * N + n] = G[n * P + p];
out:
	free(acum);
	free(e);
	free(w);
	free(ce);
	free(G);
}

// k_row turns row t of D = dy·X̃ᵀ (its first n = t + 1 entries) into K =
// L ⊙ D, adds K to ksum's row, L's row into CB ⊙ L and subtracts the
// column terms CB ⊙ K from dacum (their row sum is the caller's).
static inline __attribute__((always_inline)) void FN(k_row)(size_t n, REAL *restrict kt, REAL *restrict lt,
							   const REAL *restrict cbt, REAL *restrict ks,
							   REAL *restrict dacum) {
	for (size_t s = 0; s < n; s++) {
		REAL k = kt[s] * lt[s]; // K
		kt[s] = k;
		ks[s] += k;
		dacum[s] -= cbt[s] * k; // CB ⊙ K
		lt[s] *= cbt[s];        // CB ⊙ L
	}
}

// grad_scratch is one backward task's working memory.
typedef struct {
	REAL *acum, *dacum, *e, *w;  // (Q)
	REAL *xt, *xtT, *dxt, *u, *v; // (Q, P)
	REAL *lm, *dm;                // (Q, Q)
	REAL *ksum;                   // (Q, Q): Σ_h K of the chunk

	REAL *SPN, *GPN;              // (P, N)
	REAL *ydot;                   // (H, Q): dy_t·y_t of every head, when the forward's y is given
} FN(grad_scratch);

// head_grad adds head h's gradients of chunk c of batch b: dx, ddt, this
// chunk's dA, its dBm and dCm terms through the states, and its K to ksum
// (the terms inside the chunk, which the caller turns into dBm and dCm once
// for all heads).
HOT static void FN(head_grad)(FN(ssd_args) *a, FN(grad_scratch) *w, int b, int c, size_t h) {
	const nss_dims *d = &a->d;
	int nc = NCHUNKS(d);
	size_t q = FN(chunk_len)(d, c), P = d->P, N = d->N, Q = d->Q, H = d->H, NP = N * P, HP = H * P;
	size_t t0 = (size_t)b * d->L + (size_t)c * Q;
	const REAL *cb = a->cb + ((size_t)b * nc + c) * Q * Q;
	const REAL *Bm = a->Bm + t0 * N, *Cm = a->Cm + t0 * N, *dy = a->dy + (t0 * H + h) * P; // dy rows of stride H·P
	REAL *dBm = a->dBm + t0 * N, *dCm = a->dCm + t0 * N;
	const REAL *S = a->states + (((size_t)b * H + h) * nc + c) * NP; // (N, P)
	const REAL *G = a->adj + (((size_t)b * H + h) * nc + c) * NP;    // (N, P)
	REAL *acum = w->acum, *dacum = w->dacum, *e = w->e, *ws = w->w, *xt = w->xt, *dxt = w->dxt, *lm = w->lm, *dm = w->dm;
	FN(chunk_acum)(a, b, (int)h, c, q, acum);
	FN(chunk_xt)(a, b, (int)h, c, q, xt);
	FN(chunk_decays)(acum, q, e, ws);
	FN(decay_rows)(acum, NULL, q, Q, lm);
	FN(transpose)(S, N, P, w->SPN);
	FN(transpose)(G, N, P, w->GPN);
	FN(transpose)(xt, q, P, w->xtT);
	memset(dxt, 0, q * P * sizeof(REAL));
	memset(dacum, 0, q * sizeof(REAL));

	// Inside the chunk, y_t = Σ_s CB[t][s]·L[t][s]·X̃_s: with D = dy·X̃ᵀ and
	// K = L ⊙ D, dX̃ = (CB ⊙ L)ᵀ·dy, dCm = K·Bm, dBm = Kᵀ·Cm, and
	// dacum gets the row sums minus the column sums of CB ⊙ K. Every head
	// reads the same Bm and Cm, so dCm and dBm take Σ_h K (ksum).
	for (size_t t = 0; t < q; t++)
		for (size_t s = 0; s < q; s++) dm[t * Q + s] = 0;
	FN(gemm)(q, q, P, dy, HP, 1, w->xtT, q, dm, Q, C_LOWER);
	for (size_t t = 0; t < q; t++) FN(k_row)(t + 1, dm + t * Q, lm + t * Q, cb + t * Q, w->ksum + t * Q, dacum);
	FN(gemm)(q, P, q, lm, 1, Q, dy, HP, dxt, P, A_UPPER); // lm is lower triangular

	// From the state entering the chunk, y_t += e_t·Sᵀ·Cm_t: dCm_t +=
	// e_t·S·dy_t, dacum_t += e_t·dy_t·(Sᵀ·Cm_t).
	REAL *u = w->u, *v = w->v;
	for (size_t t = 0; t < q; t++)
		for (size_t p = 0; p < P; p++) v[t * P + p] = e[t] * dy[t * HP + p];
	FN(gemm)(q, N, P, v, P, 1, w->SPN, N, dCm, N, 0);

	// The row sums of CB ⊙ K and the terms from the state add up to dy_t·y_t
	// (y_t is exactly their sum), which the forward's y gives in one dot
	// product per step; without it they are formed term by term.
	if (w->ydot) {
		for (size_t t = 0; t < q; t++) dacum[t] += w->ydot[h * Q + t];
	} else {
		for (size_t t = 0; t < q; t++) dacum[t] += FN(dot)(cb + t * Q, dm + t * Q, t + 1);
		memset(u, 0, q * P * sizeof(REAL));
		FN(gemm)(q, P, N, Cm, N, 1, S, P, u, P, 0);
		for (size_t t = 0; t < q; t++) dacum[t] += FN(dot)(v + t * P, u + t * P, P);
	}

	// Into the state leaving the chunk, e_last·S + Σ_s w_s·Bm_s ⊗ X̃_s: with
	// U = Bm·G, dX̃_s += w_s·U_s, dBm_s += w_s·G·X̃_s, and w_s·X̃_s·U_s moves
	// from dacum_s to dacum_last.
	memset(u, 0, q * P * sizeof(REAL));
	FN(gemm)(q, P, N, Bm, N, 1, G, P, u, P, 0);
	REAL moved = 0;
	for (size_t s = 0; s < q; s++) {
		REAL dot = FN(dot)(xt + s * P, u + s * P, P);
		for (size_t p = 0; p < P; p++) {
			dxt[s * P + p] += ws[s] * u[s * P + p];
			v[s * P + p] = ws[s] * xt[s * P + p];
		}
		moved += ws[s] * dot;
		dacum[s] -= ws[s] * dot;
	}
	dacum[q - 1] += moved;
	FN(gemm)(q, N, P, v, P, 1, w->GPN, N, dBm, N, 0);
	dacum[q - 1] += e[q - 1] * FN(dot)(G, S, NP);

	// acum is a cumulative sum of dt·A: reverse cumulative sum, then the chain
	// through X̃ = dt·x and Ã = dt·A.
	REAL Ah = a->A[h], run = 0, dA = 0;
	for (size_t t = q; t-- > 0;) {
		run += dacum[t];
		size_t i = (t0 + t) * H + h;
		const REAL *xs = a->x + i * P, *dxs = dxt + t * P;
		REAL *dxo = a->dx + i * P, dtt = a->dt[i];
		for (size_t p = 0; p < P; p++) dxo[p] = dtt * dxs[p];
		a->ddt[i] = FN(dot)(xs, dxs, P) + Ah * run;
		dA += dtt * run;
	}
	a->dApart[((size_t)b * nc + c) * H + h] = dA;
}

// Backward pass 3: every head's gradients of one (batch, chunk).
HOT static void FN(grad_task)(void *user, size_t task) {
	FN(ssd_args) *a = user;
	const nss_dims *d = &a->d;
	int nc = NCHUNKS(d), b = (int)(task / nc), c = (int)(task % nc);
	size_t q = FN(chunk_len)(d, c), P = d->P, N = d->N, Q = d->Q, NP = N * P;
	size_t t0 = (size_t)b * d->L + (size_t)c * Q;
	FN(grad_scratch) w = {
		malloc(Q * sizeof(REAL)), malloc(Q * sizeof(REAL)), malloc(Q * sizeof(REAL)), malloc(Q * sizeof(REAL)),
		malloc(Q * P * sizeof(REAL)), malloc(Q * P * sizeof(REAL)), malloc(Q * P * sizeof(REAL)), malloc(Q * P * sizeof(REAL)), malloc(Q * P * sizeof(REAL)),
		malloc(Q * Q * sizeof(REAL)), malloc(Q * Q * sizeof(REAL)), calloc(Q * Q, sizeof(REAL)),
		malloc(NP * sizeof(REAL)), malloc(NP * sizeof(REAL)),
		a->yfwd ? malloc((size_t)d->H * Q * sizeof(REAL)) : NULL,
	};
	if (!w.acum || !w.dacum || !w.e || !w.w || !w.xt || !w.xtT || !w.dxt || !w.u || !w.v || !w.lm || !w.dm || !w.ksum ||
	    !w.SPN || !w.GPN || (a->yfwd && !w.ydot)) {
		a->fail = 1;
		goto out;
	}
	if (w.ydot) // in memory order: the chunk's (q, H, P) block of dy and y is read once, front to back
		for (size_t t = 0; t < q; t++)
			for (size_t h = 0; h < (size_t)d->H; h++) {
				size_t i = ((t0 + t) * d->H + h) * P;
				w.ydot[h * Q + t] = FN(dot)(a->dy + i, a->yfwd + i, P);
			}
	REAL *dBm = a->dBm + t0 * N, *dCm = a->dCm + t0 * N;
	memset(dBm, 0, q * N * sizeof(REAL));
	memset(dCm, 0, q * N * sizeof(REAL));
	for (size_t h = 0; h < (size_t)d->H; h++) FN(head_grad)(a, &w, b, c, h);
	const REAL *Bm = a->Bm + t0 * N, *Cm = a->Cm + t0 * N;
	FN(gemm)(q, N, q, w.ksum, Q, 1, Bm, N, dCm, N, A_LOWER); // dCm += (Σ_h K)·Bm
	FN(gemm)(q, N, q, w.ksum, 1, Q, Cm, N, dBm, N, A_UPPER); // dBm += (Σ_h K)ᵀ·Cm
out:
	free(w.acum);
	free(w.dacum);
	free(w.e);
	free(w.w);
	free(w.xt);
	free(w.xtT);
	free(w.dxt);
	free(w.u);
	free(w.v);
	free(w.lm);
	free(w.dm);
	free(w.ksum);
	free(w.SPN);
	free(w.GPN);
	free(w.ydot);
}

// ssd_alloc makes the buffers shared by the passes; 0 on success. The
// forward keeps the chunk states only where the caller gives it a buffer;
// the backward recomputes them where it is given none.
static int FN(ssd_alloc)(FN(ssd_args) *a, int backward) {
	const nss_dims *d = &a->d;
	size_t nc = NCHUNKS(d), B = d->B, H = d->H, Q = d->Q, NP = (size_t)d->N * d->P;
	a->cb = malloc(B * nc * Q * Q * sizeof(REAL));
	if (!backward) return !a->cb;
	if (!a->states) {
		a->states = malloc(B * H * nc * NP * sizeof(REAL));
		a->own_states = 1;
	}
	a->adj = malloc(B * H * nc * NP * sizeof(REAL));
	a->dApart = malloc(B * nc * H * sizeof(REAL));
	return !a->cb || !a->states || !a->adj || !a->dApart;
}

static void FN(ssd_free)(FN(ssd_args) *a) {
	free(a->cb);
	if (a->own_states) free(a->states);
	free(a->adj);
	free(a->dApart);
}

// nss_ssd_fwd: y (B,L,H,P) without the D·x skip, and the final state (B,H,P,N)
// (final may be NULL). With states (B,H,nc,N,P) not NULL it also keeps the
// state entering every chunk there, for nss_ssd_bwd. Returns 0, or 1 when
// memory ran out.
int FN(nss_ssd_fwd)(const nss_dims *d, const REAL *x, const REAL *dt, const REAL *A, const REAL *Bm,
		    const REAL *Cm, const REAL *h0, REAL *y, REAL *final, REAL *states, nss_par par, void *ctx) {
	FN(ssd_args) a = {.d = *d, .x = x, .dt = dt, .A = A, .Bm = Bm, .Cm = Cm, .h0 = h0, .y = y, .final = final,
			  .states = states};
	if (d->L == 0 || FN(ssd_alloc)(&a, 0)) {
		FN(ssd_free)(&a);
		return d->L == 0 ? 0 : 1;
	}
	par(ctx, FN(cb_task), d->B * (size_t)NCHUNKS(d), &a);
	par(ctx, FN(scan_task), (size_t)d->B * d->H, &a);
	FN(ssd_free)(&a);
	return a.fail;
}

// nss_ssd_bwd: the gradients of nss_ssd_fwd's (y, final) with respect to x,
// dt, A, Bm, Cm and h0, given dy and dfinal, recomputing inside chunks.
// states is what nss_ssd_fwd kept of the same inputs, or NULL: then the
// states entering the chunks are recomputed too. y is nss_ssd_fwd's y of
// the same inputs, or NULL: then the terms it sums are formed one by one.
int FN(nss_ssd_bwd)(const nss_dims *d, const REAL *x, const REAL *dt, const REAL *A, const REAL *Bm,
		    const REAL *Cm, const REAL *h0, const REAL *states, const REAL *y, const REAL *dy, const REAL *dfinal, REAL *dx,
		    REAL *ddt, REAL *dA, REAL *dBm, REAL *dCm, REAL *dh0, nss_par par, void *ctx) {
	FN(ssd_args) a = {.d = *d, .x = x, .dt = dt, .A = A, .Bm = Bm, .Cm = Cm, .h0 = h0, .dy = dy,
			  .dfinal = dfinal, .dx = dx, .ddt = ddt, .dA = dA, .dBm = dBm, .dCm = dCm, .dh0 = dh0,
			  .states = (REAL *)states, .yfwd = y}; // read only when given
	for (int h = 0; h < d->H; h++) dA[h] = 0;
	if (d->L == 0) {
		memcpy(dh0, dfinal, (size_t)d->B * d->H * d->P * d->N * sizeof(REAL));
		return 0;
	}
	if (FN(ssd_alloc)(&a, 1)) {
		FN(ssd_free)(&a);
		return 1;
	}
	size_t nc = NCHUNKS(d);
	par(ctx, FN(cb_task), d->B * nc, &a);
	if (!states) par(ctx, FN(scan_task), (size_t)d->B * d->H, &a);
	par(ctx, FN(adjoint_task), (size_t)d->B * d->H, &a);
	par(ctx, FN(grad_task), d->B * nc, &a);
	for (size_t i = 0; i < d->B * nc; i++)
		for (int h = 0; h < d->H; h++) dA[h] += a.dApart[i * d->H + h];
	FN(ssd_free)(&a);
	return a.fail;
}

#undef FN
