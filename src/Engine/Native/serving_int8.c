/*
 * int8 projections (Serving.Engine.Kernels.Int8Native): y = x · Wᵀ with W quantized symmetrically per output row and the
 * few input rows of a decode step quantized per row at call time, the dot products on AVX512-VNNI.
 *
 * Why: decoding one stream streams every weight byte per token; int8 weights are half of bf16's bytes. VPDPBUSD multiplies
 * unsigned by signed bytes, so x is passed offset by 128 (xu = xq + 128, 0..255) and the offset is taken out with each
 * weight row's sum, kept from quantization:
 *     Σ_k xq[k]·w[k] = Σ_k xu[k]·w[k] − 128·Σ_k w[k]
 *     y[m][n] = xscale[m] · wscale[n] · (Σ_k xu[m][k]·w[n][k] − 128·wsum[n]) + bias[n]
 * Integer sums are exact (k·255·127 < 2^31 for k ≤ 65,000, which callers check), so a row's result never depends
 * on its batch mates or on the order of the sums. As in serving_gemv.c, each weight row is read once for all M input rows,
 * rows in address order, and callers share the output rows out over the OpenMP team.
 */
#include <immintrin.h>
#include <stdint.h>
#include "serving_cpu.h"

/* Most input rows one call takes (Int8Native.MaxRows). */
#define INT8_MAX_ROWS 4

/* 1 when the CPU has AVX512-F/BW and AVX512-VNNI and the OS saves the AVX-512 state. */
int serving_int8_init(void) { return serving_cpu_has_avx512_vnni(); }

static inline __attribute__((always_inline)) void s8_row(const uint8_t *xu, const int R, long k, const int8_t *w, const float *xscale,
                                                        const float *wscale, const int32_t *wsum, const float *bias, float *y, long ldy, long n)
{
    const int8_t *wr = w + n * k;
    const long full = k & ~63L;
    const __mmask64 tail = k == full ? 0 : (((__mmask64)1 << (k - full)) - 1);
    __m512i acc[INT8_MAX_ROWS];
#pragma GCC unroll 4
    for (int m = 0; m < R; m++)
        acc[m] = _mm512_setzero_si512();
    for (long i = 0; i < full; i += 64)
    {
        __m512i wv = _mm512_loadu_si512(wr + i);
#pragma GCC unroll 4
        for (int m = 0; m < R; m++)
            acc[m] = _mm512_dpbusd_epi32(acc[m], _mm512_loadu_si512(xu + m * k + i), wv);
    }
    if (tail)
    {
        __m512i wv = _mm512_maskz_loadu_epi8(tail, wr + full);
#pragma GCC unroll 4
        for (int m = 0; m < R; m++)
            acc[m] = _mm512_dpbusd_epi32(acc[m], _mm512_maskz_loadu_epi8(tail, xu + m * k + full), wv);
    }
    float b = bias ? bias[n] : 0.0f;
#pragma GCC unroll 4
    for (int m = 0; m < R; m++)
    {
        int32_t dot = _mm512_reduce_add_epi32(acc[m]) - 128 * wsum[n];
        y[m * ldy + n] = xscale[m] * wscale[n] * (float)dot + b;
    }
}

static inline __attribute__((always_inline)) void s8_range(const uint8_t *xu, const int R, long k, const int8_t *w, const float *xscale,
                                                          const float *wscale, const int32_t *wsum, const float *bias, float *y, long ldy,
                                                          long n0, long n1)
{
    for (long n = n0; n < n1; n++)
        s8_row(xu, R, k, w, xscale, wscale, wsum, bias, y, ldy, n);
}

/*
 * xu: [rows, k] quantized input rows offset by 128; xscale: [rows]; w: [N, k] int8; wscale, wsum: [N]; bias: [N] or
 * NULL; y: [rows, ldy] float32; outputs n0 ≤ n < n1 are written.
 */
void serving_gemv_s8(const uint8_t *xu, const float *xscale, int rows, long k, const int8_t *w, const float *wscale, const int32_t *wsum,
                     const float *bias, float *y, long ldy, long n0, long n1)
{
    switch (rows)
    {
    case 1: s8_range(xu, 1, k, w, xscale, wscale, wsum, bias, y, ldy, n0, n1); break;
    case 2: s8_range(xu, 2, k, w, xscale, wscale, wsum, bias, y, ldy, n0, n1); break;
    case 3: s8_range(xu, 3, k, w, xscale, wscale, wsum, bias, y, ldy, n0, n1); break;
    case 4: s8_range(xu, 4, k, w, xscale, wscale, wsum, bias, y, ldy, n0, n1); break;
    default: break;
    }
}
