/*
 * int8 projections (Serving.Engine.Kernels.Int8Native): y = x · Wᵀ (+ bias) with W quantized symmetrically per output row
 * at load and the input rows quantized per row at call time (serving_quantize_rows_s8), the dot products on AVX512-VNNI.
 *
 * Why: decoding one stream streams every weight byte per token; int8 weights are half of bf16's bytes. VPDPBUSD multiplies
 * unsigned by signed bytes, so x is passed offset by 128 (xu = xq + 128, 0..255) and the offset is taken out with each
 * weight row's sum, kept from quantization:
 *     Σ_k xq[k]·w[k] = Σ_k xu[k]·w[k] − 128·Σ_k w[k]
 *     y[m][n] = round( xscale[m] · wscale[n] · (Σ_k xu[m][k]·w[n][k] − 128·wsum[n]) + bias[n] )
 * with round: to bf16 (nearest even) for bf16 outputs, none for float32. Integer sums are exact (k·255·127 < 2^31 for
 * k ≤ 65,000, which callers check), so a row's result never depends on its batch mates or on the order of the sums.
 *
 * Shapes: a decode step (a few rows) reads each weight row once for all rows, rows in address order (the prefetcher
 * follows, as in serving_gemv.c); a prefill (many rows) takes the rows in blocks of INT8_ROW_BLOCK, so that a block of
 * quantized inputs stays in L2 while the weight rows stream past it, each weight row reused from L1 by every four rows.
 * Callers share the output rows out over the OpenMP team.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "serving_cpu.h"

/* Input rows one pass over a weight row serves (held in registers). */
#define INT8_REGISTER_ROWS 4
/* Input rows whose quantized bytes stay in L2 while the weight streams (64 rows × 2,816 inputs = 180 KB). */
#define INT8_ROW_BLOCK 64

/* 1 when the CPU has AVX512-F/BW and AVX512-VNNI and the OS saves the AVX-512 state. */
int serving_int8_init(void) { return serving_cpu_has_avx512_vnni(); }

static inline __m512 s8_load_f32(const void *x, int x_bf16, long i, __mmask16 mask)
{
    if (x_bf16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(_mm512_maskz_loadu_epi16((__mmask32)mask, (const uint16_t *)x + i))), 16));
    return _mm512_maskz_loadu_ps(mask, (const float *)x + i);
}

/*
 * Rows r0 ≤ r < r1 of x [rows, k] (bfloat16 or float32) → xu [rows, k] = round(x / scale) + 128 and xscale [rows] =
 * max_k |x[r][k]| / 127, as Int8Quantizer.QuantizeInputRows does (the same division, rounding to nearest even). A row of
 * zeros gets scale 0 and bytes of 128; a row holding NaN or infinity gets scale NaN, so its outputs are NaN.
 */
void serving_quantize_rows_s8(const void *x, int x_bf16, long k, uint8_t *xu, float *xscale, long r0, long r1)
{
    for (long r = r0; r < r1; r++)
    {
        const void *row = x_bf16 ? (const void *)((const uint16_t *)x + r * k) : (const void *)((const float *)x + r * k);
        __m512 max = _mm512_setzero_ps();
        __mmask16 unordered = 0;
        for (long i = 0; i < k; i += 16)
        {
            __mmask16 mask = k - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - i)) - 1u);
            __m512 v = s8_load_f32(row, x_bf16, i, mask);
            unordered |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
            max = _mm512_max_ps(max, _mm512_abs_ps(v));
        }
        float largest = _mm512_reduce_max_ps(max);
        float scale = unordered || isinf(largest) ? NAN : largest / 127.0f;
        xscale[r] = scale;
        uint8_t *out = xu + r * k;
        if (scale == 0.0f || isnan(scale))
        {
            memset(out, 128, (size_t)k);
            continue;
        }
        const __m512 divisor = _mm512_set1_ps(scale);
        const __m512i low = _mm512_set1_epi32(-127), high = _mm512_set1_epi32(127), offset = _mm512_set1_epi32(128);
        for (long i = 0; i < k; i += 16)
        {
            __mmask16 mask = k - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - i)) - 1u);
            __m512i q = _mm512_cvt_roundps_epi32(_mm512_div_ps(s8_load_f32(row, x_bf16, i, mask), divisor), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, low), high), offset);
            _mm512_mask_cvtepi32_storeu_epi8(out + i, mask, q);
        }
    }
}

/*
 * Output n for R input rows starting at xu (R is a constant at each call site, so the accumulators stay in registers).
 * Two accumulators per input row, for even and odd 64-byte chunks, hide VPDPBUSD's latency.
 */
static inline __attribute__((always_inline)) void s8_row(const uint8_t *xu, const int R, long k, const int8_t *w, const float *xscale,
                                                        const float *wscale, const int32_t *wsum, const void *bias, int bf16_io,
                                                        void *y, long ldy, int out_f32, long n)
{
    const int8_t *wr = w + n * k;
    const long pairs = k & ~127L, full = k & ~63L;
    const __mmask64 tail = k == full ? 0 : (((__mmask64)1 << (k - full)) - 1);
    __m512i even[INT8_REGISTER_ROWS], odd[INT8_REGISTER_ROWS];
#pragma GCC unroll 4
    for (int m = 0; m < R; m++)
        even[m] = odd[m] = _mm512_setzero_si512();
    for (long i = 0; i < pairs; i += 128)
    {
        __m512i w0 = _mm512_loadu_si512(wr + i), w1 = _mm512_loadu_si512(wr + i + 64);
#pragma GCC unroll 4
        for (int m = 0; m < R; m++)
        {
            even[m] = _mm512_dpbusd_epi32(even[m], _mm512_loadu_si512(xu + m * k + i), w0);
            odd[m] = _mm512_dpbusd_epi32(odd[m], _mm512_loadu_si512(xu + m * k + i + 64), w1);
        }
    }
    if (full > pairs)
    {
        __m512i w0 = _mm512_loadu_si512(wr + pairs);
#pragma GCC unroll 4
        for (int m = 0; m < R; m++)
            even[m] = _mm512_dpbusd_epi32(even[m], _mm512_loadu_si512(xu + m * k + pairs), w0);
    }
    if (tail)
    {
        __m512i wt = _mm512_maskz_loadu_epi8(tail, wr + full);
#pragma GCC unroll 4
        for (int m = 0; m < R; m++)
            odd[m] = _mm512_dpbusd_epi32(odd[m], _mm512_maskz_loadu_epi8(tail, xu + m * k + full), wt);
    }
    float b = 0.0f;
    if (bias)
    {
        if (bf16_io)
        {
            uint32_t u = (uint32_t)((const uint16_t *)bias)[n] << 16;
            memcpy(&b, &u, 4);
        }
        else
            b = ((const float *)bias)[n];
    }
#pragma GCC unroll 4
    for (int m = 0; m < R; m++)
    {
        int32_t dot = _mm512_reduce_add_epi32(_mm512_add_epi32(even[m], odd[m])) - 128 * wsum[n];
        float product = xscale[m] * wscale[n] * (float)dot;
        float value = product + b;
        if (out_f32)
            ((float *)y)[m * ldy + n] = value;
        else
            ((uint16_t *)y)[m * ldy + n] = serving_to_bf16(value);
    }
}

#define S8_ROWS(R) s8_row(xu + m * k, R, k, w, xscale + m, wscale, wsum, bias, bf16_io, out_f32 ? (void *)((float *)y + m * ldy) : (void *)((uint16_t *)y + m * ldy), ldy, out_f32, n)

/*
 * xu: [rows, k] quantized input rows offset by 128; xscale: [rows]; w: [N, k] int8; wscale, wsum: [N]; bias: [N] (bfloat16
 * when bf16_io, else float32) or NULL; y: [rows, ldy], float32 when out_f32, else bfloat16; outputs n0 ≤ n < n1 are written.
 */
void serving_gemm_s8(const uint8_t *xu, const float *xscale, long rows, long k, const int8_t *w, const float *wscale, const int32_t *wsum,
                     const void *bias, int bf16_io, void *y, long ldy, int out_f32, long n0, long n1)
{
    for (long block = 0; block < rows; block += INT8_ROW_BLOCK)
    {
        const long end = rows - block < INT8_ROW_BLOCK ? rows : block + INT8_ROW_BLOCK;
        for (long n = n0; n < n1; n++)
        {
            long m = block;
            for (; m + 4 <= end; m += 4)
                S8_ROWS(4);
            switch (end - m)
            {
            case 1: S8_ROWS(1); break;
            case 2: S8_ROWS(2); break;
            case 3: S8_ROWS(3); break;
            default: break;
            }
        }
    }
}
