// The matrix product of the SSD kernels, written once for a vector width:
// fused_ssd.h includes this file with GEMM_NAME (the function's name),
// GEMM_BYTES (the width of its vectors) and GEMM_ATTR (its target
// attributes) defined, once per width, and each inclusion undefines them.
// See gemm in fused_ssd.h for what it computes and what the flags mean.

#define GEMM_VEC CAT(GEMM_NAME, _vec)
typedef REAL GEMM_VEC __attribute__((vector_size(GEMM_BYTES)));
#define VL (sizeof(GEMM_VEC) / sizeof(REAL))

#define LOADV(v, p) memcpy(&(v), (p), sizeof(v))
#define ADDV(p, v)                           \
	do {                                 \
		GEMM_VEC c_;                 \
		memcpy(&c_, (p), sizeof c_); \
		c_ += (v);                   \
		memcpy((p), &c_, sizeof c_); \
	} while (0)

GEMM_ATTR static void GEMM_NAME(size_t M, size_t Nn, size_t K, const REAL *A, size_t ars, size_t acs, const REAL *B,
				size_t ldb, REAL *C, size_t ldc, int flags) {
	size_t i = 0, k0, k1, jend;
	for (; i + 4 <= M; i += 4) {
		FN(gemm_bounds)(i, 4, Nn, K, flags, VL, &k0, &k1, &jend);
		const REAL *a0 = A + i * ars, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars;
		REAL *c0 = C + i * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
		size_t j = 0;
		for (; j + 2 * VL <= jend; j += 2 * VL) {
			GEMM_VEC s00 = {0}, s01 = {0}, s10 = {0}, s11 = {0}, s20 = {0}, s21 = {0}, s30 = {0}, s31 = {0};
			for (size_t k = k0; k < k1; k++) {
				GEMM_VEC b0, b1;
				LOADV(b0, B + k * ldb + j);
				LOADV(b1, B + k * ldb + j + VL);
				REAL x0 = a0[k * acs], x1 = a1[k * acs], x2 = a2[k * acs], x3 = a3[k * acs];
				s00 += x0 * b0;
				s01 += x0 * b1;
				s10 += x1 * b0;
				s11 += x1 * b1;
				s20 += x2 * b0;
				s21 += x2 * b1;
				s30 += x3 * b0;
				s31 += x3 * b1;
			}
			ADDV(c0 + j, s00);
			ADDV(c0 + j + VL, s01);
			ADDV(c1 + j, s10);
			ADDV(c1 + j + VL, s11);
			ADDV(c2 + j, s20);
			ADDV(c2 + j + VL, s21);
			ADDV(c3 + j, s30);
			ADDV(c3 + j + VL, s31);
		}
		for (; j + VL <= jend; j += VL) { // one vector of columns left
			GEMM_VEC s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
			for (size_t k = k0; k < k1; k++) {
				GEMM_VEC b0;
				LOADV(b0, B + k * ldb + j);
				s0 += a0[k * acs] * b0;
				s1 += a1[k * acs] * b0;
				s2 += a2[k * acs] * b0;
				s3 += a3[k * acs] * b0;
			}
			ADDV(c0 + j, s0);
			ADDV(c1 + j, s1);
			ADDV(c2 + j, s2);
			ADDV(c3 + j, s3);
		}
		for (; j < jend; j++) {
			REAL s0 = 0, s1 = 0, s2 = 0, s3 = 0;
			for (size_t k = k0; k < k1; k++) {
				REAL b = B[k * ldb + j];
				s0 += a0[k * acs] * b;
				s1 += a1[k * acs] * b;
				s2 += a2[k * acs] * b;
				s3 += a3[k * acs] * b;
			}
			c0[j] += s0;
			c1[j] += s1;
			c2[j] += s2;
			c3[j] += s3;
		}
	}
	for (; i < M; i++) {
		FN(gemm_bounds)(i, 1, Nn, K, flags, VL, &k0, &k1, &jend);
		REAL *c = C + i * ldc;
		for (size_t k = k0; k < k1; k++) {
			REAL x = A[i * ars + k * acs];
			const REAL *b = B + k * ldb;
			for (size_t j = 0; j < jend; j++) c[j] += x * b[j];
		}
	}
}

#undef VL
#undef LOADV
#undef ADDV
#undef GEMM_VEC
#undef GEMM_NAME
#undef GEMM_BYTES
#undef GEMM_ATTR
