/*
 * Small-batch projections at the memory bound (Serving.Engine.Kernels.GemvNative): y = x · Wᵀ (+ bias) for a few input
 * rows, with W [N, K] row-major as the checkpoint stores it (bfloat16 or float32) and x [M, K], M ≤ GEMV_MAX_ROWS.
 *
 * Why this exists: a decode step of one to four sequences is GEMV-shaped. It has to stream every weight byte once and
 * does almost no arithmetic per byte, so it should run at the machine's read bandwidth. libtorch's small-M GEMMs do not
 * (measured on the bench preset, 2-core Zen 5, bf16: one decode row took 2.7x the time to read its weights). This kernel
 * reads each weight row exactly once for all M input rows, rows in address order, and is called on a range of output
 * rows so that every core of the OpenMP team streams its own share.
 *
 * Maths, per output (m, n), with float32 sums:
 *     y[m][n] = round( Σ_k x[m][k] · W[n][k] + bias[n] )      round: to bf16 (nearest even) or none for float32 output
 * bfloat16: VDPBF16PS multiplies neighbouring bf16 pairs exactly and adds them into 16 float32 lanes; float32: FMA. Each
 * output's sum is formed in the same order whatever M is, so a row's result does not depend on its batch mates.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "serving_cpu.h"

/* Most input rows one call takes (GemvNative.MaxRows). */
#define GEMV_MAX_ROWS 4

/* 1 when the CPU has AVX512-F/BW and AVX512-BF16 and the OS saves the AVX-512 state. */
int serving_gemv_init(void) { return serving_cpu_has_avx512_bf16(); }

/*
 * Output row n for R input rows, bf16 (R is a constant at each call site, so the accumulators stay in registers). The
 * weight row is read front to back, one row after another: the whole weight streams in address order, which the
 * hardware prefetcher follows at full bandwidth (reading four rows side by side ran at half of it on Zen 5). One running
 * sum per input row over 32-element chunks in order, the tail last, reduced by serving_sum16: the order serving_wide.c's
 * blocks sum in, so a row's output is the same whichever kernel and batch it ran in.
 */
static inline __attribute__((always_inline)) void bf16_row(const uint16_t *x, const int R, long k, const uint16_t *w, const uint16_t *bias,
                                                          void *y, long ldy, int out_f32, long n)
{
    const uint16_t *wr = w + n * k;
    const long full = k & ~31L;
    const __mmask32 tail = (__mmask32)(k == full ? 0 : ((1u << (k - full)) - 1u));
    __m512 acc[GEMV_MAX_ROWS];
#pragma GCC unroll 4
    for (int m = 0; m < R; m++)
        acc[m] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (long i = 0; i < full; i += 32)
    {
        __m512bh w0 = (__m512bh)_mm512_loadu_si512(wr + i);
#pragma GCC unroll 4
        for (int m = 0; m < R; m++)
            acc[m] = _mm512_dpbf16_ps(acc[m], w0, (__m512bh)_mm512_loadu_si512(x + m * k + i));
    }
    if (tail)
    {
        __m512bh wt = (__m512bh)_mm512_maskz_loadu_epi16(tail, wr + full);
#pragma GCC unroll 4
        for (int m = 0; m < R; m++)
            acc[m] = _mm512_dpbf16_ps(acc[m], wt, (__m512bh)_mm512_maskz_loadu_epi16(tail, x + m * k + full));
    }
    float b = bias ? serving_from_bf16(bias[n]) : 0.0f;
#pragma GCC unroll 4
    for (int m = 0; m < R; m++)
        serving_store(y, out_f32, m * ldy + n, serving_sum16(acc[m]) + b);
}

static inline __attribute__((always_inline)) void bf16_range(const uint16_t *x, const int R, long k, const uint16_t *w, const uint16_t *bias,
                                                            void *y, long ldy, int out_f32, long n0, long n1)
{
    for (long n = n0; n < n1; n++)
        bf16_row(x, R, k, w, bias, y, ldy, out_f32, n);
}

/*
 * bfloat16 W and x. rows: M (1..GEMV_MAX_ROWS); k: K; w: W; bias: [N] bf16 or NULL; y: [M, ldy] bf16, or float32 with
 * out_f32; outputs n0 ≤ n < n1 are written.
 */
void serving_gemv_bf16(const uint16_t *x, int rows, long k, const uint16_t *w, const uint16_t *bias, void *y, long ldy, int out_f32,
                       long n0, long n1)
{
    switch (rows)
    {
    case 1: bf16_range(x, 1, k, w, bias, y, ldy, out_f32, n0, n1); break;
    case 2: bf16_range(x, 2, k, w, bias, y, ldy, out_f32, n0, n1); break;
    case 3: bf16_range(x, 3, k, w, bias, y, ldy, out_f32, n0, n1); break;
    case 4: bf16_range(x, 4, k, w, bias, y, ldy, out_f32, n0, n1); break;
    default: break;
    }
}

/* The same for float32 W, x and y (FMA, 16 lanes; one running sum over 16-element chunks, as serving_wide.c's). */
static inline __attribute__((always_inline)) void f32_row(const float *x, const int R, long k, const float *w, const float *bias, float *y,
                                                         long ldy, long n)
{
    const float *wr = w + n * k;
    const long full = k & ~15L;
    const __mmask16 tail = (__mmask16)(k == full ? 0 : ((1u << (k - full)) - 1u));
    __m512 acc[GEMV_MAX_ROWS];
#pragma GCC unroll 4
    for (int m = 0; m < R; m++)
        acc[m] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (long i = 0; i < full; i += 16)
    {
        __m512 w0 = _mm512_loadu_ps(wr + i);
#pragma GCC unroll 4
        for (int m = 0; m < R; m++)
            acc[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + m * k + i), acc[m]);
    }
    if (tail)
    {
        __m512 wt = _mm512_maskz_loadu_ps(tail, wr + full);
#pragma GCC unroll 4
        for (int m = 0; m < R; m++)
            acc[m] = _mm512_fmadd_ps(wt, _mm512_maskz_loadu_ps(tail, x + m * k + full), acc[m]);
    }
    float b = bias ? bias[n] : 0.0f;
#pragma GCC unroll 4
    for (int m = 0; m < R; m++)
        y[m * ldy + n] = serving_sum16(acc[m]) + b;
}

static inline __attribute__((always_inline)) void f32_range(const float *x, const int R, long k, const float *w, const float *bias, float *y,
                                                           long ldy, long n0, long n1)
{
    for (long n = n0; n < n1; n++)
        f32_row(x, R, k, w, bias, y, ldy, n);
}

/* float32 W and x, float32 y [M, ldy]; bias [N] float32 or NULL; outputs n0 ≤ n < n1. */
void serving_gemv_f32(const float *x, int rows, long k, const float *w, const float *bias, float *y, long ldy, long n0, long n1)
{
    switch (rows)
    {
    case 1: f32_range(x, 1, k, w, bias, y, ldy, n0, n1); break;
    case 2: f32_range(x, 2, k, w, bias, y, ldy, n0, n1); break;
    case 3: f32_range(x, 3, k, w, bias, y, ldy, n0, n1); break;
    case 4: f32_range(x, 4, k, w, bias, y, ldy, n0, n1); break;
    default: break;
    }
}

/*
 * Reads n bytes (a multiple of 256) and returns a sum that depends on all of them, so nothing is optimised away: the
 * read-bandwidth probe the benchmarks compare a decode step with, on the same cores and in the same process.
 */
double serving_read_bytes(const uint8_t *data, long n)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (long i = 0; i < n; i += 256)
    {
        a0 = _mm512_xor_si512(a0, _mm512_loadu_si512(data + i));
        a1 = _mm512_xor_si512(a1, _mm512_loadu_si512(data + i + 64));
        a2 = _mm512_xor_si512(a2, _mm512_loadu_si512(data + i + 128));
        a3 = _mm512_xor_si512(a3, _mm512_loadu_si512(data + i + 192));
    }
    __m512i s = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    return (double)_mm512_reduce_add_epi64(s);
}
