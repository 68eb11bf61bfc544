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
 * W comes packed (Int8Matrix): blocks of 64 output rows, each a run of groups of 4 inputs × 64 rows, so one 64-byte load
 * holds 4 inputs of 16 outputs. An input row's 4 bytes, broadcast, multiply it with one VPDPBUSD into 16 outputs' lanes:
 * no horizontal sums, and the epilogue handles 16 outputs a vector. A block's 4 vectors per group are held in registers
 * for up to 6 input rows (24 accumulators): 10 loads per 24 VPDPBUSD.
 *
 * Shapes: a decode step (a few rows) reads each block once for all rows (a second pass of up to 6 rows finds it in L2: 64
 * rows × k bytes), blocks in address order (the prefetcher follows, as in serving_gemv.c); a prefill (many rows) takes the rows in
 * blocks of INT8_ROW_BLOCK, so that a block of quantized inputs stays in L2 while the weight blocks stream past it. Callers
 * share the weight blocks out over the OpenMP team.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "serving_cpu.h"

/* Output rows per packed block (Int8Matrix.BlockRows) and inputs per group (Int8Matrix.GroupColumns). */
#define INT8_BLOCK 64
#define INT8_GROUP 4
/* Input rows one pass over a weight block serves (held in registers: 6 rows × 4 vectors of 16 outputs, with a block's
   4 weight vectors and a broadcast input, 29 of AVX-512's 32 registers). */
#define INT8_REGISTER_ROWS 6
/*
 * Tiles of this many rows or more prefetch the weight stream INT8_PREFETCH_BYTES ahead. Why: from 5 rows a tile's
 * multiply-adds take about as long as its read, and without prefetching the two ran one after the other (8 rows on
 * [88000, 1024]: 1.5–1.7× the read time); 8 KiB ahead took 8 rows 11–18 % faster on Zen 5 (docs/benchmarks/int8.md).
 * Up to 4 rows the kernel streams at the read bound without it, and prefetching there measured slower.
 */
#define INT8_PREFETCH_ROWS 5
#define INT8_PREFETCH_BYTES 8192
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
 * Outputs n .. n + 15 (those below N) of input row m from the 16 integer sums in acc: the same float32 expression, in the
 * same order, as the portable kernel, and bf16 rounding to nearest even done on the integer bits (as serving_to_bf16:
 * VCVTNEPS2BF16 would flush subnormals to zero).
 */
static inline __attribute__((always_inline)) void s8_store16(__m512i acc, float xscale, const float *wscale, const int32_t *wsum, const void *bias,
                                                            int bf16_io, void *y, int out_f32, long n, long N)
{
    const __mmask16 keep = N - n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (N - n)) - 1u);
    __m512i dot = _mm512_sub_epi32(acc, _mm512_slli_epi32(_mm512_maskz_loadu_epi32(keep, wsum + n), 7));
    __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(xscale), _mm512_maskz_loadu_ps(keep, wscale + n)), _mm512_cvtepi32_ps(dot));
    if (bias)
        v = _mm512_add_ps(v, bf16_io ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(_mm512_maskz_loadu_epi16((__mmask32)keep, (const uint16_t *)bias + n))), 16))
                                     : _mm512_maskz_loadu_ps(keep, (const float *)bias + n));
    if (out_f32)
    {
        _mm512_mask_storeu_ps((float *)y + n, keep, v);
        return;
    }
    const __m512i r = serving_to_bf16_x16(v);
    _mm512_mask_cvtepi32_storeu_epi16((uint16_t *)y + n, keep, r);
}

/* An input row's 4 bytes from column 4·q, broadcast. */
static inline __attribute__((always_inline)) __m512i s8_broadcast(const uint8_t *row, long q)
{
    int32_t v;
    memcpy(&v, row + 4 * q, 4);
    return _mm512_set1_epi32(v);
}

/* The last group of a row whose length k is not a multiple of 4, broadcast: reads only the row's own bytes. */
static inline __attribute__((always_inline)) __m512i s8_broadcast_tail(const uint8_t *row, long q, long k)
{
    return _mm512_broadcastd_epi32(_mm512_castsi512_si128(_mm512_maskz_loadu_epi8((__mmask64)((1u << (k - 4 * q)) - 1u), row + 4 * q)));
}

/*
 * Group q (inputs 4q .. 4q + 3) of R input rows against a block's group g of 4 vectors: 4·R VPDPBUSD. tail (a constant
 * at each call site) marks the last group of rows whose length k is not a multiple of 4.
 */
static inline __attribute__((always_inline)) void s8_group(__m512i acc[][4], const int R, const int8_t *g, const uint8_t *xu, long k, long q,
                                                          const int tail)
{
    const __m512i w0 = _mm512_load_si512(g), w1 = _mm512_load_si512(g + 64), w2 = _mm512_load_si512(g + 128), w3 = _mm512_load_si512(g + 192);
#pragma GCC unroll 6
    for (int m = 0; m < R; m++)
    {
        const __m512i xb = tail ? s8_broadcast_tail(xu + m * k, q, k) : s8_broadcast(xu + m * k, q);
        acc[m][0] = _mm512_dpbusd_epi32(acc[m][0], xb, w0);
        acc[m][1] = _mm512_dpbusd_epi32(acc[m][1], xb, w1);
        acc[m][2] = _mm512_dpbusd_epi32(acc[m][2], xb, w2);
        acc[m][3] = _mm512_dpbusd_epi32(acc[m][3], xb, w3);
    }
}

/*
 * R input rows (R ≤ 6, a constant at each call site, so the accumulators stay in registers) against one packed block of
 * 64 outputs starting at output n (block = its bytes, kp / 4 groups of 256 bytes). A tile of INT8_PREFETCH_ROWS rows or
 * more prefetches INT8_PREFETCH_BYTES ahead over its first prefetch_groups groups (0 for a block's later tiles).
 */
static inline __attribute__((always_inline)) void s8_block(const uint8_t *xu, const int R, long k, long kp, const int8_t *block, const float *xscale,
                                                          const float *wscale, const int32_t *wsum, const void *bias, int bf16_io, void *y, long ldy,
                                                          int out_f32, long n, long N, long prefetch_groups)
{
    const long groups = k / INT8_GROUP, all = kp / INT8_GROUP;
    __m512i acc[INT8_REGISTER_ROWS][4];
#pragma GCC unroll 6
    for (int m = 0; m < R; m++)
    {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            acc[m][j] = _mm512_setzero_si512();
    }
    /* The loops over whole groups have no branch in them: with one, GCC spilled a weight vector of the 6-row tile. */
    long q = 0;
    if (R >= INT8_PREFETCH_ROWS)
        for (; q < prefetch_groups; q++)
        {
            const int8_t *g = block + q * (INT8_BLOCK * INT8_GROUP);
#pragma GCC unroll 4
            for (int line = 0; line < INT8_BLOCK * INT8_GROUP; line += 64)
                _mm_prefetch((const char *)g + INT8_PREFETCH_BYTES + line, _MM_HINT_T0);
            s8_group(acc, R, g, xu, k, q, 0);
        }
    for (; q < groups; q++)
        s8_group(acc, R, block + q * (INT8_BLOCK * INT8_GROUP), xu, k, q, 0);
    if (groups < all)
        s8_group(acc, R, block + groups * (INT8_BLOCK * INT8_GROUP), xu, k, groups, 1);
#pragma GCC unroll 6
    for (int m = 0; m < R; m++)
    {
        void *row = out_f32 ? (void *)((float *)y + m * ldy) : (void *)((uint16_t *)y + m * ldy);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            if (n + 16 * j < N)
                s8_store16(acc[m][j], xscale[m], wscale, wsum, bias, bf16_io, row, out_f32, n + 16 * j, N);
    }
}

#define S8_BLOCK(R) s8_block(xu + m * k, R, k, kp, block, xscale + m, wscale, wsum, bias, bf16_io, out_f32 ? (void *)((float *)y + m * ldy) : (void *)((uint16_t *)y + m * ldy), ldy, out_f32, n, N, m == first ? prefetch_groups : 0)

/*
 * xu: [rows, k] quantized input rows offset by 128; xscale: [rows]; w: packed [ceil(N / 64) blocks][kp / 4][64][4] int8
 * (kp = k rounded up to 4, 64-byte aligned); wscale, wsum: [N]; bias: [N] (bfloat16 when bf16_io, else float32) or NULL;
 * y: [rows, ldy], float32 when out_f32, else bfloat16; the outputs of blocks b0 ≤ b < b1 are written.
 */
void serving_gemm_s8_packed(const uint8_t *xu, const float *xscale, long rows, long k, const int8_t *w, const float *wscale, const int32_t *wsum,
                     const void *bias, int bf16_io, void *y, long ldy, int out_f32, long N, long b0, long b1)
{
    const long kp = (k + INT8_GROUP - 1) / INT8_GROUP * INT8_GROUP;
    const int8_t *end_of_blocks = w + b1 * INT8_BLOCK * kp;
    for (long first = 0; first < rows; first += INT8_ROW_BLOCK)
    {
        const long end = rows - first < INT8_ROW_BLOCK ? rows : first + INT8_ROW_BLOCK;
        for (long b = b0; b < b1; b++)
        {
            const int8_t *block = w + b * INT8_BLOCK * kp;
            const long n = b * INT8_BLOCK;
            /* Groups of this block whose prefetch stays inside the caller's blocks (the rest belong to another part). */
            const long ahead = (end_of_blocks - block - INT8_PREFETCH_BYTES) / (INT8_BLOCK * INT8_GROUP);
            const long prefetch_groups = ahead < 0 ? 0 : ahead < k / INT8_GROUP ? ahead : k / INT8_GROUP;
            long m = first;
            for (; m + INT8_REGISTER_ROWS <= end; m += INT8_REGISTER_ROWS)
                S8_BLOCK(6);
            switch (end - m)
            {
            case 1: S8_BLOCK(1); break;
            case 2: S8_BLOCK(2); break;
            case 3: S8_BLOCK(3); break;
            case 4: S8_BLOCK(4); break;
            case 5: S8_BLOCK(5); break;
            default: break;
            }
        }
    }
}
