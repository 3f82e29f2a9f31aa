// The SSD scan kernels of netssm's custom-op domain, written once for a real
// type: fused_kernels.c includes this file twice, with REAL = float (the
// kernels ONNX Runtime runs) and REAL = double (the float64 form the tests
// check against finite differences). SUF names the instance, EXPR its exp.
//
// Shapes (row-major): x (B,L,H,P), dt (B,L,H), A (H), Bm and Cm (B,L,N),
// states (B,H,P,N). One group: every head reads the same Bm and Cm.
//
// The scan works chunk by chunk (chunk length Q, the last chunk shorter when
// Q does not divide L), in three passes that never hold a (Q × Q) matrix per
// head and chunk at once:
//   1. per (batch, chunk): CB[t][s] = Cm_t·Bm_s (shared by the heads);
//   2. per (batch, head): the state entering each chunk, by the recurrence
//      between chunks (H_{c+1} = exp(a_c)·H_c + S_c);
//   3. per (batch, chunk): every head's outputs (forward), or its gradients
//      (backward, which also runs an adjoint pass between chunks in 2).
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
	REAL *y, *final;
	REAL *dx, *ddt, *dA, *dBm, *dCm, *dh0;
	REAL *cb;     // (B, nc, Q, Q): CB of every chunk (lower triangle)
	REAL *states; // (B, H, nc, N, P): state entering each chunk
	REAL *adj;    // (B, H, nc, N, P): adjoint of the state leaving each chunk
	REAL *dApart; // (B, nc, H): dA of each chunk, summed afterwards
	int fail;     // set by a task whose scratch allocation failed
} FN(ssd_args);

static inline size_t FN(chunk_len)(const nss_dims *d, int c) {
	int q = d->L - c * d->Q;
	return (size_t)(q < d->Q ? q : d->Q);
}

// Pass 1: CB[t][s] = Σ_n Cm_t[n]·Bm_s[n] for s ≤ t, one (batch, chunk) per task.
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
	for (size_t t = 0; t < q; t++) {
		REAL *row = cb + t * Q;
		for (size_t s = 0; s <= t; s++) row[s] = 0;
		for (size_t n = 0; n < N; n++) {
			REAL ctn = Cm[t * N + n];
			const REAL *bn = bt + n * q;
			for (size_t s = 0; s <= t; s++) row[s] += ctn * bn[s];
		}
	}
	free(bt);
}

// chunk_acum fills acum[t] = Σ_{i≤t} dt_i·A_h inside chunk c of (b, h).
static inline void FN(chunk_acum)(const FN(ssd_args) *a, int b, int h, int c, size_t q, REAL *acum) {
	const nss_dims *d = &a->d;
	const REAL *dt = a->dt + ((size_t)b * d->L + (size_t)c * d->Q) * d->H + h;
	REAL Ah = a->A[h], run = 0;
	for (size_t t = 0; t < q; t++) {
		run += dt[t * d->H] * Ah;
		acum[t] = run;
	}
}

// chunk_xt fills xt (q, P) with X̃_t = dt_t·x_t of head h in chunk c.
static inline void FN(chunk_xt)(const FN(ssd_args) *a, int b, int h, int c, size_t q, REAL *xt) {
	const nss_dims *d = &a->d;
	size_t P = d->P, H = d->H, t0 = (size_t)b * d->L + (size_t)c * d->Q;
	for (size_t t = 0; t < q; t++) {
		const REAL *xs = a->x + ((t0 + t) * H + h) * P;
		REAL w = a->dt[(t0 + t) * H + h];
		for (size_t p = 0; p < P; p++) xt[t * P + p] = w * xs[p];
	}
}

// Pass 2 (forward): the state entering each chunk of (b, h), and the final
// state. S (N, P) runs through the chunks: S ← exp(a_last)·S +
// Σ_s exp(a_last − acum_s)·Bm_s ⊗ X̃_s.
HOT static void FN(states_task)(void *user, size_t task) {
	FN(ssd_args) *a = user;
	const nss_dims *d = &a->d;
	int nc = NCHUNKS(d), b = (int)(task / d->H), h = (int)(task % d->H);
	size_t P = d->P, N = d->N, Q = d->Q, NP = N * P;
	REAL *acum = malloc(Q * sizeof(REAL)), *xt = malloc(Q * P * sizeof(REAL)), *S = malloc(NP * sizeof(REAL));
	if (!acum || !xt || !S) {
		a->fail = 1;
		goto out;
	}
	const REAL *h0 = a->h0 + task * NP; // (P, N)
	for (size_t p = 0; p < P; p++)
		for (size_t n = 0; n < N; n++) S[n * P + p] = h0[p * N + n];
	for (int c = 0; c < nc; c++) {
		memcpy(a->states + (task * nc + c) * NP, S, NP * sizeof(REAL));
		size_t q = FN(chunk_len)(d, c);
		FN(chunk_acum)(a, b, h, c, q, acum);
		FN(chunk_xt)(a, b, h, c, q, xt);
		REAL last = acum[q - 1], el = EXPR(last);
		for (size_t i = 0; i < NP; i++) S[i] *= el;
		const REAL *Bm = a->Bm + ((size_t)b * d->L + (size_t)c * Q) * N;
		for (size_t s = 0; s < q; s++) {
			REAL w = EXPR(last - acum[s]);
			const REAL *xs = xt + s * P;
			for (size_t n = 0; n < N; n++) {
				REAL k = w * Bm[s * N + n];
				REAL *Sn = S + n * P;
				for (size_t p = 0; p < P; p++) Sn[p] += k * xs[p];
			}
		}
	}
	if (a->final) {
		REAL *f = a->final + task * NP;
		for (size_t p = 0; p < P; p++)
			for (size_t n = 0; n < N; n++) f[p * N + n] = S[n * P + p];
	}
out:
	free(acum);
	free(xt);
	free(S);
}

// decay_rows fills lm[t][s] = exp(acum_t − acum_s) for s ≤ t.
static inline void FN(decay_rows)(const REAL *acum, size_t q, size_t Q, REAL *lm) {
	for (size_t t = 0; t < q; t++) {
		REAL at = acum[t];
		REAL *row = lm + t * Q;
		for (size_t s = 0; s <= t; s++) row[s] = EXPR(at - acum[s]);
	}
}

// Pass 3 (forward): y_t = Σ_{s≤t} CB[t][s]·exp(acum_t − acum_s)·X̃_s +
// exp(acum_t)·Sᵀ·Cm_t for every head, one (batch, chunk) per task.
HOT static void FN(out_task)(void *user, size_t task) {
	FN(ssd_args) *a = user;
	const nss_dims *d = &a->d;
	int nc = NCHUNKS(d), b = (int)(task / nc), c = (int)(task % nc);
	size_t q = FN(chunk_len)(d, c), P = d->P, N = d->N, Q = d->Q, H = d->H, NP = N * P;
	size_t t0 = (size_t)b * d->L + (size_t)c * Q;
	const REAL *cb = a->cb + ((size_t)b * nc + c) * Q * Q;
	const REAL *Cm = a->Cm + t0 * N;
	REAL *acum = malloc(Q * sizeof(REAL)), *xt = malloc(Q * P * sizeof(REAL)), *m = malloc(Q * Q * sizeof(REAL));
	if (!acum || !xt || !m) {
		a->fail = 1;
		goto out;
	}
	for (size_t h = 0; h < H; h++) {
		FN(chunk_acum)(a, b, (int)h, c, q, acum);
		FN(chunk_xt)(a, b, (int)h, c, q, xt);
		FN(decay_rows)(acum, q, Q, m);
		const REAL *S = a->states + (((size_t)b * H + h) * nc + c) * NP;
		for (size_t t = 0; t < q; t++) {
			REAL *row = m + t * Q, *yt = a->y + ((t0 + t) * H + h) * P;
			const REAL *cbt = cb + t * Q;
			for (size_t s = 0; s <= t; s++) row[s] *= cbt[s];
			for (size_t p = 0; p < P; p++) yt[p] = 0;
			for (size_t s = 0; s <= t; s++) {
				REAL k = row[s];
				const REAL *xs = xt + s * P;
				for (size_t p = 0; p < P; p++) yt[p] += k * xs[p];
			}
			REAL et = EXPR(acum[t]);
			for (size_t n = 0; n < N; n++) {
				REAL k = et * Cm[t * N + n];
				const REAL *Sn = S + n * P;
				for (size_t p = 0; p < P; p++) yt[p] += k * Sn[p];
			}
		}
	}
out:
	free(acum);
	free(xt);
	free(m);
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
	REAL *acum = malloc(Q * sizeof(REAL)), *G = malloc(NP * sizeof(REAL));
	if (!acum || !G) {
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
		REAL el = EXPR(acum[q - 1]);
		for (size_t i = 0; i < NP; i++) G[i] *= el;
		for (size_t t = 0; t < q; t++) {
			REAL et = EXPR(acum[t]);
			const REAL *dyt = a->dy + ((t0 + t) * H + h) * P, *Ct = a->Cm + (t0 + t) * N;
			for (size_t n = 0; n < N; n++) {
				REAL k = et * Ct[n];
				REAL *Gn = G + n * P;
				for (size_t p = 0; p < P; p++) Gn[p] += k * dyt[p];
			}
		}
	}
	REAL *dh0 = a->dh0 + task * NP;
	for (size_t p = 0; p < P; p++)
		for (size_t n = 0; n < N; n++) dh0[p * N + n] = G[n * P + p];
out:
	free(acum);
	free(G);
}

// transpose_np writes the (N, P) matrix src as (P, N).
static inline void FN(transpose_np)(const REAL *src, size_t N, size_t P, REAL *dst) {
	for (size_t n = 0; n < N; n++)
		for (size_t p = 0; p < P; p++) dst[p * N + n] = src[n * P + p];
}

// chunk_grad_scratch is one backward task's working memory.
typedef struct {
	REAL *acum, *dacum, *xt, *xtT, *dxt, *lm, *dm, *SPN, *GPN, *u;
} FN(grad_scratch);

// head_grad adds head h's gradients of chunk c of batch b: dBm and dCm rows
// (summed over heads by the caller's loop), dx, ddt, and this chunk's dA.
static inline void FN(head_grad)(FN(ssd_args) *a, FN(grad_scratch) *w, int b, int c, size_t h) {
	const nss_dims *d = &a->d;
	int nc = NCHUNKS(d);
	size_t q = FN(chunk_len)(d, c), P = d->P, N = d->N, Q = d->Q, H = d->H, NP = N * P;
	size_t t0 = (size_t)b * d->L + (size_t)c * Q;
	const REAL *cb = a->cb + ((size_t)b * nc + c) * Q * Q;
	const REAL *Bm = a->Bm + t0 * N, *Cm = a->Cm + t0 * N;
	REAL *dBm = a->dBm + t0 * N, *dCm = a->dCm + t0 * N;
	const REAL *S = a->states + (((size_t)b * H + h) * nc + c) * NP; // (N, P)
	const REAL *G = a->adj + (((size_t)b * H + h) * nc + c) * NP;    // (N, P)
	REAL *acum = w->acum, *dacum = w->dacum, *xt = w->xt, *xtT = w->xtT, *dxt = w->dxt, *lm = w->lm, *dm = w->dm;
	FN(chunk_acum)(a, b, (int)h, c, q, acum);
	FN(chunk_xt)(a, b, (int)h, c, q, xt);
	FN(decay_rows)(acum, q, Q, lm);
	FN(transpose_np)(S, N, P, w->SPN);
	FN(transpose_np)(G, N, P, w->GPN);
	for (size_t t = 0; t < q; t++)
		for (size_t p = 0; p < P; p++) xtT[p * q + t] = xt[t * P + p];
	for (size_t i = 0; i < q * P; i++) dxt[i] = 0;
	for (size_t t = 0; t < q; t++) dacum[t] = 0;
	REAL last = acum[q - 1], el = EXPR(last);

	for (size_t t = 0; t < q; t++) {
		const REAL *dyt = a->dy + ((t0 + t) * H + h) * P, *cbt = cb + t * Q, *lmt = lm + t * Q;
		REAL *dmt = dm + t * Q, *dCt = dCm + t * N;
		// dm[t][s] = dy_t·X̃_s
		for (size_t s = 0; s <= t; s++) dmt[s] = 0;
		for (size_t p = 0; p < P; p++) {
			REAL k = dyt[p];
			const REAL *xp = xtT + p * q;
			for (size_t s = 0; s <= t; s++) dmt[s] += k * xp[s];
		}
		// Inside the chunk: y_t = Σ_s CB·L·X̃_s.
		REAL rowsum = 0;
		for (size_t s = 0; s <= t; s++) {
			REAL mts = cbt[s] * lmt[s], r = mts * dmt[s];
			rowsum += r;
			dacum[s] -= r;
			REAL *dxs = dxt + s * P;
			for (size_t p = 0; p < P; p++) dxs[p] += mts * dyt[p];
			REAL k = lmt[s] * dmt[s];
			const REAL *Bs = Bm + s * N;
			REAL *dBs = dBm + s * N;
			const REAL *Ct = Cm + t * N;
			for (size_t n = 0; n < N; n++) {
				dCt[n] += k * Bs[n];
				dBs[n] += k * Ct[n];
			}
		}
		dacum[t] += rowsum;
		// From the state entering the chunk: y_t += exp(acum_t)·Sᵀ·Cm_t.
		REAL et = EXPR(acum[t]);
		const REAL *Ct = Cm + t * N;
		REAL *u = w->u; // u = Sᵀ·Cm_t (P)
		for (size_t p = 0; p < P; p++) u[p] = 0;
		for (size_t n = 0; n < N; n++) {
			REAL k = Ct[n];
			const REAL *Sn = S + n * P;
			for (size_t p = 0; p < P; p++) u[p] += k * Sn[p];
		}
		REAL dot = 0;
		for (size_t p = 0; p < P; p++) dot += dyt[p] * u[p];
		dacum[t] += et * dot;
		for (size_t p = 0; p < P; p++) {
			REAL k = et * dyt[p];
			const REAL *Sp = w->SPN + p * N;
			for (size_t n = 0; n < N; n++) dCt[n] += k * Sp[n];
		}
	}
	// Into the state leaving the chunk: exp(a_last)·S + Σ_s w_s·Bm_s ⊗ X̃_s.
	REAL gs = 0;
	for (size_t i = 0; i < NP; i++) gs += G[i] * S[i];
	dacum[q - 1] += el * gs;
	for (size_t s = 0; s < q; s++) {
		REAL ws = EXPR(last - acum[s]);
		const REAL *Bs = Bm + s * N, *xs = xt + s * P;
		REAL *u = w->u; // u = Gᵀ·Bm_s (P)
		for (size_t p = 0; p < P; p++) u[p] = 0;
		for (size_t n = 0; n < N; n++) {
			REAL k = Bs[n];
			const REAL *Gn = G + n * P;
			for (size_t p = 0; p < P; p++) u[p] += k * Gn[p];
		}
		REAL dot = 0;
		REAL *dxs = dxt + s * P;
		for (size_t p = 0; p < P; p++) {
			dot += xs[p] * u[p];
			dxs[p] += ws * u[p];
		}
		REAL r = ws * dot;
		dacum[q - 1] += r;
		dacum[s] -= r;
		REAL *dBs = dBm + s * N;
		for (size_t p = 0; p < P; p++) {
			REAL k = ws * xs[p];
			const REAL *Gp = w->GPN + p * N;
			for (size_t n = 0; n < N; n++) dBs[n] += k * Gp[n];
		}
	}
	// acum is a cumulative sum of dt·A: reverse cumulative sum, then the chain
	// through X̃ = dt·x and Ã = dt·A.
	REAL Ah = a->A[h], run = 0, dA = 0;
	for (size_t t = q; t-- > 0;) {
		run += dacum[t];
		size_t i = (t0 + t) * H + h;
		const REAL *xs = a->x + i * P, *dxs = dxt + t * P;
		REAL *dxo = a->dx + i * P, dtt = a->dt[i], xd = 0;
		for (size_t p = 0; p < P; p++) {
			dxo[p] = dtt * dxs[p];
			xd += xs[p] * dxs[p];
		}
		a->ddt[i] = xd + Ah * run;
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
		malloc(Q * sizeof(REAL)), malloc(Q * sizeof(REAL)), malloc(Q * P * sizeof(REAL)),
		malloc(Q * P * sizeof(REAL)), malloc(Q * P * sizeof(REAL)), malloc(Q * Q * sizeof(REAL)),
		malloc(Q * Q * sizeof(REAL)), malloc(NP * sizeof(REAL)), malloc(NP * sizeof(REAL)),
		malloc(P * sizeof(REAL)),
	};
	if (!w.acum || !w.dacum || !w.xt || !w.xtT || !w.dxt || !w.lm || !w.dm || !w.SPN || !w.GPN || !w.u) {
		a->fail = 1;
		goto out;
	}
	memset(a->dBm + t0 * N, 0, q * N * sizeof(REAL));
	memset(a->dCm + t0 * N, 0, q * N * sizeof(REAL));
	for (size_t h = 0; h < (size_t)d->H; h++) FN(head_grad)(a, &w, b, c, h);
out:
	free(w.acum);
	free(w.dacum);
	free(w.xt);
	free(w.xtT);
	free(w.dxt);
	free(w.lm);
	free(w.dm);
	free(w.SPN);
	free(w.GPN);
	free(w.u);
}

// ssd_alloc makes the buffers shared by the passes; 0 on success.
static int FN(ssd_alloc)(FN(ssd_args) *a, int backward) {
	const nss_dims *d = &a->d;
	size_t nc = NCHUNKS(d), B = d->B, H = d->H, Q = d->Q, NP = (size_t)d->N * d->P;
	a->cb = malloc(B * nc * Q * Q * sizeof(REAL));
	a->states = malloc(B * H * nc * NP * sizeof(REAL));
	if (backward) {
		a->adj = malloc(B * H * nc * NP * sizeof(REAL));
		a->dApart = malloc(B * nc * H * sizeof(REAL));
	}
	return !a->cb || !a->states || (backward && (!a->adj || !a->dApart));
}

static void FN(ssd_free)(FN(ssd_args) *a) {
	free(a->cb);
	free(a->states);
	free(a->adj);
	free(a->dApart);
}

// nss_ssd_fwd: y (B,L,H,P) without the D·x skip, and the final state (B,H,P,N)
// (final may be NULL). Returns 0, or 1 when memory ran out.
int FN(nss_ssd_fwd)(const nss_dims *d, const REAL *x, const REAL *dt, const REAL *A, const REAL *Bm,
		    const REAL *Cm, const REAL *h0, REAL *y, REAL *final, nss_par par, void *ctx) {
	FN(ssd_args) a = {.d = *d, .x = x, .dt = dt, .A = A, .Bm = Bm, .Cm = Cm, .h0 = h0, .y = y, .final = final};
	if (d->L == 0 || FN(ssd_alloc)(&a, 0)) {
		FN(ssd_free)(&a);
		return d->L == 0 ? 0 : 1;
	}
	size_t nc = NCHUNKS(d);
	par(ctx, FN(cb_task), d->B * nc, &a);
	par(ctx, FN(states_task), (size_t)d->B * d->H, &a);
	par(ctx, FN(out_task), d->B * nc, &a);
	FN(ssd_free)(&a);
	return a.fail;
}

// nss_ssd_bwd: the gradients of nss_ssd_fwd's (y, final) with respect to x,
// dt, A, Bm, Cm and h0, given dy and dfinal, recomputing inside chunks.
int FN(nss_ssd_bwd)(const nss_dims *d, const REAL *x, const REAL *dt, const REAL *A, const REAL *Bm,
		    const REAL *Cm, const REAL *h0, const REAL *dy, const REAL *dfinal, REAL *dx, REAL *ddt,
		    REAL *dA, REAL *dBm, REAL *dCm, REAL *dh0, nss_par par, void *ctx) {
	FN(ssd_args) a = {.d = *d, .x = x, .dt = dt, .A = A, .Bm = Bm, .Cm = Cm, .h0 = h0, .dy = dy,
			  .dfinal = dfinal, .dx = dx, .ddt = ddt, .dA = dA, .dBm = dBm, .dCm = dCm, .dh0 = dh0};
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
	par(ctx, FN(states_task), (size_t)d->B * d->H, &a);
	par(ctx, FN(adjoint_task), (size_t)d->B * d->H, &a);
	par(ctx, FN(grad_task), d->B * nc, &a);
	for (size_t i = 0; i < d->B * nc; i++)
		for (int h = 0; h < d->H; h++) dA[h] += a.dApart[i * d->H + h];
	FN(ssd_free)(&a);
	return a.fail;
}

#undef FN
