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
 * Shapes: a decode step (a few rows) reads each block once for all rows, blocks in address order (the prefetcher follows, as
 * in serving_gemv.c): up to 6 rows in one pass, 7–12 as two tiles taking the block in runs of 8 KiB, the second reading each
 * run from L1; from 13 rows each later tile's pass finds the block in L2 (64 outputs × k bytes). A prefill (many rows) takes
 * the rows in blocks of INT8_ROW_BLOCK, so that a block of quantized inputs stays in L2 while the weight blocks stream past
 * it. Callers share the weight blocks out over the OpenMP team.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "serving_cpu.h"
#include "serving_int8.h"

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
/* Groups (of 4 inputs × 64 outputs: 8 KiB) a two-tile row block takes a run at a time (see s8_two_tiles). */
#define INT8_TWO_TILE_GROUPS 32

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
 * R input rows (R ≤ 6, a constant at each call site, so the accumulators stay in registers) through groups q0 ≤ q < q1 of
 * one packed block (block = its bytes, groups of 256 bytes), their sums carried in saved [R][4] between calls; the block's
 * last group of rows whose length k is not a multiple of 4 when tail. A tile of INT8_PREFETCH_ROWS rows or more
 * prefetches INT8_PREFETCH_BYTES ahead while q < prefetch_end.
 */
static inline __attribute__((always_inline)) void s8_tile(__m512i saved[][4], const int R, const uint8_t *xu, long k, const int8_t *block, long q0,
                                                         long q1, int tail, long prefetch_end)
{
    __m512i acc[INT8_REGISTER_ROWS][4];
#pragma GCC unroll 6
    for (int m = 0; m < R; m++)
    {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            acc[m][j] = saved[m][j];
    }
    /* The loops over whole groups have no branch in them: with one, GCC spilled a weight vector of the 6-row tile. */
    long q = q0;
    if (R >= INT8_PREFETCH_ROWS)
        for (const long stop = q1 < prefetch_end ? q1 : prefetch_end; q < stop; q++)
        {
            const int8_t *g = block + q * (INT8_BLOCK * INT8_GROUP);
#pragma GCC unroll 4
            for (int line = 0; line < INT8_BLOCK * INT8_GROUP; line += 64)
                _mm_prefetch((const char *)g + INT8_PREFETCH_BYTES + line, _MM_HINT_T0);
            s8_group(acc, R, g, xu, k, q, 0);
        }
    for (; q < q1; q++)
        s8_group(acc, R, block + q * (INT8_BLOCK * INT8_GROUP), xu, k, q, 0);
    if (tail)
        s8_group(acc, R, block + q1 * (INT8_BLOCK * INT8_GROUP), xu, k, q1, 1);
#pragma GCC unroll 6
    for (int m = 0; m < R; m++)
    {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            saved[m][j] = acc[m][j];
    }
}

/*
 * R input rows (R ≤ 6, a constant at each call site) against one packed block of 64 outputs starting at output n, in one
 * pass, written to y [R, ldy]; a tile of INT8_PREFETCH_ROWS rows or more prefetches over the first prefetch_groups groups.
 */
static inline __attribute__((always_inline)) void s8_block(const uint8_t *xu, const int R, long k, long kp, const int8_t *block, const float *xscale,
                                                          const float *wscale, const int32_t *wsum, const void *bias, int bf16_io, void *y, long ldy,
                                                          int out_f32, long n, long N, long prefetch_groups)
{
    const long groups = k / INT8_GROUP;
    __m512i acc[INT8_REGISTER_ROWS][4];
#pragma GCC unroll 6
    for (int m = 0; m < R; m++)
    {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            acc[m][j] = _mm512_setzero_si512();
    }
    s8_tile(acc, R, xu, k, block, 0, groups, groups < kp / INT8_GROUP, prefetch_groups);
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

/* s8_block for R = 1 .. 6 known only at run time: one copy per R, each with its accumulators in registers. */
static inline __attribute__((always_inline)) void s8_block_of(const uint8_t *xu, long R, long k, long kp, const int8_t *block, const float *xscale,
                                                             const float *wscale, const int32_t *wsum, const void *bias, int bf16_io, void *y,
                                                             long ldy, int out_f32, long n, long N, long prefetch_groups)
{
    switch (R)
    {
    case 1: s8_block(xu, 1, k, kp, block, xscale, wscale, wsum, bias, bf16_io, y, ldy, out_f32, n, N, prefetch_groups); break;
    case 2: s8_block(xu, 2, k, kp, block, xscale, wscale, wsum, bias, bf16_io, y, ldy, out_f32, n, N, prefetch_groups); break;
    case 3: s8_block(xu, 3, k, kp, block, xscale, wscale, wsum, bias, bf16_io, y, ldy, out_f32, n, N, prefetch_groups); break;
    case 4: s8_block(xu, 4, k, kp, block, xscale, wscale, wsum, bias, bf16_io, y, ldy, out_f32, n, N, prefetch_groups); break;
    case 5: s8_block(xu, 5, k, kp, block, xscale, wscale, wsum, bias, bf16_io, y, ldy, out_f32, n, N, prefetch_groups); break;
    default: s8_block(xu, 6, k, kp, block, xscale, wscale, wsum, bias, bf16_io, y, ldy, out_f32, n, N, prefetch_groups); break;
    }
}

/* The second tile of s8_two_tiles for R = 1 .. 6 known only at run time. */
static inline __attribute__((always_inline)) void s8_second_tile(__m512i saved[][4], long R, const uint8_t *xu, long k, const int8_t *block, long q0,
                                                                long q1, int tail)
{
    switch (R)
    {
    case 1: s8_tile(saved, 1, xu, k, block, q0, q1, tail, 0); break;
    case 2: s8_tile(saved, 2, xu, k, block, q0, q1, tail, 0); break;
    case 3: s8_tile(saved, 3, xu, k, block, q0, q1, tail, 0); break;
    case 4: s8_tile(saved, 4, xu, k, block, q0, q1, tail, 0); break;
    case 5: s8_tile(saved, 5, xu, k, block, q0, q1, tail, 0); break;
    default: s8_tile(saved, 6, xu, k, block, q0, q1, tail, 0); break;
    }
}

/*
 * 7 ≤ rows ≤ 12 input rows (two tiles: 6, then rows − 6) against one packed block, taken in runs of INT8_TWO_TILE_GROUPS
 * groups, the second tile right behind the first. Why: a second tile's pass over the whole block was compute with no
 * memory stream under it; behind the first it reads each run from L1 while the first tile's prefetches of the next run
 * are in flight (on [88000, 1024], 0.94–0.97 of the time of two whole-block passes at 8 rows, 0.92–0.93 at 11; docs/benchmarks/int8.md).
 * The integer sums are the same, so a row's result does not change.
 */
static void s8_two_tiles(const uint8_t *xu, long rows, long k, long kp, const int8_t *block, const float *xscale, const float *wscale,
                         const int32_t *wsum, const void *bias, int bf16_io, void *y, long ldy, int out_f32, long n, long N, long prefetch_groups)
{
    const long groups = k / INT8_GROUP, second = rows - INT8_REGISTER_ROWS;
    const int tail = groups < kp / INT8_GROUP;
    __m512i acc[2 * INT8_REGISTER_ROWS][4] __attribute__((aligned(64)));
    for (long m = 0; m < rows; m++)
        for (int j = 0; j < 4; j++)
            acc[m][j] = _mm512_setzero_si512();
    long q0 = 0;
    do
    {
        const long q1 = groups - q0 <= INT8_TWO_TILE_GROUPS ? groups : q0 + INT8_TWO_TILE_GROUPS;
        const int last = q1 == groups && tail;
        s8_tile(acc, INT8_REGISTER_ROWS, xu, k, block, q0, q1, last, prefetch_groups);
        s8_second_tile(acc + INT8_REGISTER_ROWS, second, xu + INT8_REGISTER_ROWS * k, k, block, q0, q1, last);
        q0 = q1;
    } while (q0 < groups);
    for (long m = 0; m < rows; m++)
    {
        void *row = out_f32 ? (void *)((float *)y + m * ldy) : (void *)((uint16_t *)y + m * ldy);
        for (int j = 0; j < 4; j++)
            if (n + 16 * j < N)
                s8_store16(acc[m][j], xscale[m], wscale, wsum, bias, bf16_io, row, out_f32, n + 16 * j, N);
    }
}

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
            if (end - first > INT8_REGISTER_ROWS && end - first <= 2 * INT8_REGISTER_ROWS)
            {
                s8_two_tiles(xu + first * k, end - first, k, kp, block, xscale + first, wscale, wsum, bias, bf16_io,
                             out_f32 ? (void *)((float *)y + first * ldy) : (void *)((uint16_t *)y + first * ldy), ldy, out_f32, n, N, prefetch_groups);
                continue;
            }
            for (long m = first; m < end; m += INT8_REGISTER_ROWS)
                s8_block_of(xu + m * k, end - m < INT8_REGISTER_ROWS ? end - m : INT8_REGISTER_ROWS, k, kp, block, xscale + m, wscale, wsum, bias, bf16_io,
                            out_f32 ? (void *)((float *)y + m * ldy) : (void *)((uint16_t *)y + m * ldy), ldy, out_f32, n, N, m == first ? prefetch_groups : 0);
        }
    }
}
