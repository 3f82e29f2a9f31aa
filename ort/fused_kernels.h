// Entry points of the kernels in fused_kernels.c, shared by the ONNX
// Runtime glue (fused_ops.c) and the Go wrappers (fused.go).
#ifndef NETSSM_FUSED_KERNELS_H
#define NETSSM_FUSED_KERNELS_H

#include <stddef.h>
#include <stdint.h>

// nss_task is one task of a parallel loop; nss_par runs fn(user, i) for i in
// [0, total), in parallel when ctx is an ONNX Runtime kernel context.
typedef void (*nss_task)(void *user, size_t i);
typedef void (*nss_par)(void *ctx, nss_task fn, size_t total, void *user);

// nss_serial is nss_par on the calling thread.
void nss_serial(void *ctx, nss_task fn, size_t total, void *user);

// nss_pool_par is nss_par on netssm's own worker threads (fused_pool.c):
// ctx points to an int, the number of threads the job may use, the calling
// one included.
void nss_pool_par(void *ctx, nss_task fn, size_t total, void *user);

// nss_dims are the sizes of one SSD scan: batch B, length L, heads H, head
// dimension P, state size N, chunk length Q.
typedef struct {
	int B, L, H, P, N, Q;
} nss_dims;

// The SSD scan and its backward; states (B, H, nc, N, P) with nc = ⌈L/Q⌉
// are the states entering the chunks, which the forward keeps when states
// is not NULL and the backward reads instead of recomputing them (NULL:
// recompute). The backward's y is the forward's output, or NULL (then the
// terms that add up to dy·y are formed one by one).
int nss_ssd_fwd_f32(const nss_dims *d, const float *x, const float *dt, const float *A, const float *Bm,
		    const float *Cm, const float *h0, float *y, float *final, float *states, nss_par par, void *ctx);
int nss_ssd_bwd_f32(const nss_dims *d, const float *x, const float *dt, const float *A, const float *Bm,
		    const float *Cm, const float *h0, const float *states, const float *y, const float *dy, const float *dfinal,
		    float *dx, float *ddt, float *dA, float *dBm, float *dCm, float *dh0, nss_par par, void *ctx);
int nss_ssd_fwd_f64(const nss_dims *d, const double *x, const double *dt, const double *A, const double *Bm,
		    const double *Cm, const double *h0, double *y, double *final, double *states, nss_par par,
		    void *ctx);
int nss_ssd_bwd_f64(const nss_dims *d, const double *x, const double *dt, const double *A, const double *Bm,
		    const double *Cm, const double *h0, const double *states, const double *y, const double *dy,
		    const double *dfinal, double *dx, double *ddt, double *dA, double *dBm, double *dCm,
		    double *dh0, nss_par par, void *ctx);

// nss_ssd_vector_bits reports the width in bits of the vectors of the SSD
// kernels' matrix product: 512 where the CPU has AVX-512, else 256. With
// bits 256 or 512 it first makes the kernels use that width (512 only where
// the CPU has it); the tests run both.
int nss_ssd_vector_bits(int bits);

// nss_step_dims are the sizes of one mixer step: batch B, heads H, head
// dimension P, state size N, conv width K.
typedef struct {
	int B, H, P, N, K;
} nss_step_dims;

int nss_mixer_step(const nss_step_dims *d, const float *zxbcdt, const float *conv, const float *convw,
		   const float *convb, const float *dtb, const float *alog, const float *D, const float *normw,
		   const float *ssm, float *out, float *conv2, float *ssm2, nss_par par, void *ctx);

// nss_block_dims are the sizes of one residual block's decoding step: its
// mixer step, the model width D and the block norm's eps.
typedef struct {
	nss_step_dims step;
	int D;
	float eps;
} nss_block_dims;

// NSS_BLOCK_PANEL is the number of output columns in a panel of the
// weights nss_block_step reads: a weight W (O, I) comes as (⌈O/16⌉, I, 16),
// panel p holding rows 16p… of W transposed, zeros past row O.
#define NSS_BLOCK_PANEL 16

// nss_block_step: x (B,D) → x + MixerStep((RMSNorm(x)·norm_w)·W_inᵀ)·W_outᵀ,
// from the panels of W_in (2·H·P+2N+H, D) and W_out (D, H·P), and the next
// conv and SSM states (in place when conv2 == conv and ssm2 == ssm).
int nss_block_step(const nss_block_dims *bd, const float *x, const float *normw, const float *inwp, const float *conv,
		   const float *convw, const float *convb, const float *dtb, const float *alog, const float *D,
		   const float *gnormw, const float *ssm, const float *outwp, float *xout, float *conv2, float *ssm2,
		   nss_par par, void *ctx);

// nss_conv_dims are the sizes of one causal depthwise convolution: batch B,
// length L, channels C, width W.
typedef struct {
	int B, L, C, W;
} nss_conv_dims;

// nss_conv_fwd: x (B,L,C), state (B,C,W), w (C,W), bias (C) → y = silu(conv)
// (B,L,C), next state (B,C,W).
int nss_conv_fwd(const nss_conv_dims *d, const float *x, const float *state, const float *w, const float *bias,
		 float *y, float *next, nss_par par, void *ctx);
// nss_conv_bwd: the same inputs, dy (B,L,C) and dnext (B,C,W) → dx, dstate,
// dw, dbias.
int nss_conv_bwd(const nss_conv_dims *d, const float *x, const float *state, const float *w, const float *bias,
		 const float *dy, const float *dnext, float *dx, float *dstate, float *dw, float *dbias, nss_par par,
		 void *ctx);

// nss_norm_dims are the sizes of one RMSNorm: rows of D values, and eps.
typedef struct {
	int64_t rows;
	int D;
	float eps;
} nss_norm_dims;

// nss_norm_fwd: x (rows, D), w (D) → y = x / √(mean(x²) + eps) ⊙ w.
int nss_norm_fwd(const nss_norm_dims *d, const float *x, const float *w, float *y, nss_par par, void *ctx);
// nss_norm_bwd: x, w and dy (rows, D) → dx (rows, D), dw (D).
int nss_norm_bwd(const nss_norm_dims *d, const float *x, const float *w, const float *dy, float *dx, float *dw,
		 nss_par par, void *ctx);

// nss_gnorm_fwd: y, x, z (rows, D), Dskip (H), w (D), D = H·P → out =
// RMSNorm((y + Dskip·x) ⊙ silu(z)) ⊙ w, head h owning channels h·P…h·P+P−1.
int nss_gnorm_fwd(const nss_norm_dims *d, int H, const float *y, const float *x, const float *skip, const float *z,
		  const float *w, float *out, nss_par par, void *ctx);
// nss_gnorm_bwd: the same inputs and dout → dy, dx, dz (rows, D), dDskip (H), dw (D).
int nss_gnorm_bwd(const nss_norm_dims *d, int H, const float *y, const float *x, const float *skip, const float *z,
		  const float *w, const float *dout, float *dy, float *dx, float *dskip, float *dz, float *dw, nss_par par,
		  void *ctx);

// nss_xent_fwd: logits x (rows, V) and targets (rows) → nll (rows) =
// log Σ exp(x) − x[target], 0 for a target outside 0…V−1.
int nss_xent_fwd(int64_t rows, int V, const float *x, const int64_t *target, float *nll, nss_par par, void *ctx);
// nss_xent_bwd: the same and dnll (rows) → dx (rows, V) = dnll·(softmax(x) − onehot(target)).
int nss_xent_bwd(int64_t rows, int V, const float *x, const int64_t *target, const float *dnll, float *dx, nss_par par,
		 void *ctx);

#endif
