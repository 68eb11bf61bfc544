/*
 * Projections of many rows and skinny products on AVX512-BF16 (Serving.Engine.Kernels.GemvNative): blocks of 4 weight
 * rows × 4 x rows held in registers, the weight streamed from memory once and reused from cache by every group of x rows.
 * serving_gemv.c has the row-at-a-time kernel for up to 4 rows, which serving_gemm_*_rows use for the last rows % 4.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "serving_cpu.h"

void serving_gemv_bf16(const uint16_t *x, int rows, long k, const uint16_t *w, const uint16_t *bias, void *y, long ldy, int out_f32, long n0, long n1);
void serving_gemv_f32(const float *x, int rows, long k, const float *w, const float *bias, float *y, long ldy, long n0, long n1);

/*
 * Skinny products: y = W · xᵀ for x [M, K] with M a multiple of 4 (a LoRA A, rows padded with zeros; row stride ldx),
 * W [N, K], float32 y [N, ldy ≥ M]. DoRA's slot fill needs W·Aᵀ over every base projection (‖W_o + s·(B·A)_o‖ per output
 * row); libtorch's GEMM runs that shape far below the machine's arithmetic rate. Register blocks of 4 weight rows × 4 x
 * rows (16 accumulators): each step loads 4 + 4 vectors for 16 multiply-adds, where one weight row against 16 x rows
 * loads 17 and ran at under half the rate. The 4 weight rows are reused from cache for every block of x rows, so the
 * weight streams from memory once. x's row stride should not be a multiple of 4 KiB (rows would contend for L1 sets).
 * Every output's sum runs over K in the same order, whatever the block it falls in.
 */
#define WIDE_W 4
#define WIDE_X 4

/*
 * Which of the next block's weight rows a pass over x rows [m0, m0 + WIDE_X) prefetches into L2, a 64-byte line per
 * step: only the first pass of a block reads its rows from memory, the others from cache, so the rows of block
 * n + WIDE_W are fetched during all of block n's passes (pass p takes rows p, p + P, ... of the P passes) and memory
 * stays busy through them; a 1 KiB look-ahead in the first pass alone left it idle for the rest of the block. Into L1
 * they evicted x's rows: 16 x rows of bf16, W [44000, 1024], one core, 8.8 ms before, 6.3 into L1, 5.1 into L2; the
 * float32 kernel is unchanged at ~15 ms (its x rows stream from L2 in every pass).
 */
struct wide_prefetch
{
    const char *start;
    int rows;
    long stride;
};

static inline __attribute__((always_inline)) struct wide_prefetch wide_prefetch_for(const void *w, int esize, long k, int rows, int m0,
                                                                                     long n, long n1)
{
    struct wide_prefetch p = {0, 0, 0};
    int passes = rows / WIDE_X, pass = m0 / WIDE_X;
    long next = n + WIDE_W + pass;
    if (next >= n1)
        return p;
    p.start = (const char *)w + next * k * esize;
    p.stride = (long)passes * k * esize;
    for (long r = next; r < n + 2 * WIDE_W && r < n1; r += passes)
        p.rows++;
    return p;
}

/*
 * Where a wide block writes when it serves a projection (serving_gemm_bf16_rows): y [rows, ldy] row-major, bias [N] (bf16
 * for bf16 x, else float32) or NULL, bf16 or float32 y as for serving_gemv_bf16. NULL: the skinny product's W·xᵀ.
 */
struct wide_output
{
    void *y;
    long ldy;
    const void *bias;
    int out_f32;
};

/*
 * The sixteen sums of a projection block at once: lane 4·m + c of the result is Σ over the lanes of acc[c][m] (the
 * transposed tree of unpacks and 128-bit shuffles, 15 adds for 16 sums where one reduction each took 4).
 */
static inline __attribute__((always_inline)) __m512 wide_sums16(__m512 acc[WIDE_W][WIDE_X])
{
    __m512 t[8], u[4];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
    {
        __m512 a = acc[(2 * i) % 4][(2 * i) / 4], b = acc[(2 * i + 1) % 4][(2 * i + 1) / 4];
        t[i] = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[2 * i]), _mm512_castps_pd(t[2 * i + 1]))),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[2 * i]), _mm512_castps_pd(t[2 * i + 1]))));
    __m512 v0 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xDD));
    __m512 v1 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(v0, v1, 0x88), _mm512_shuffle_f32x4(v0, v1, 0xDD));
}

/* Stores a full projection block: sums (lane 4·m + c) + bias[n + c] into y[m][n + c], bf16 (nearest even) or float32. */
static inline __attribute__((always_inline)) void wide_store16(__m512 sums, const struct wide_output *out, int bf16_bias, long n)
{
    __m128 b4 = _mm_setzero_ps();
    if (out->bias)
        b4 = bf16_bias ? _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(_mm_loadl_epi64((const __m128i *)((const uint16_t *)out->bias + n))), 16))
                       : _mm_loadu_ps((const float *)out->bias + n);
    const __m512 v = _mm512_add_ps(sums, _mm512_broadcast_f32x4(b4));
    if (out->out_f32)
    {
        float *y = (float *)out->y + n;
        _mm_storeu_ps(y, _mm512_extractf32x4_ps(v, 0));
        _mm_storeu_ps(y + out->ldy, _mm512_extractf32x4_ps(v, 1));
        _mm_storeu_ps(y + 2 * out->ldy, _mm512_extractf32x4_ps(v, 2));
        _mm_storeu_ps(y + 3 * out->ldy, _mm512_extractf32x4_ps(v, 3));
        return;
    }
    const __m512i r = serving_to_bf16_x16(v);
    uint16_t h[16];
    _mm256_storeu_si256((__m256i *)h, _mm512_cvtepi32_epi16(r));
    uint16_t *y = (uint16_t *)out->y + n;
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++)
        memcpy(y + m * out->ldy, h + 4 * m, 8);
}

static inline __attribute__((always_inline)) void bf16_wide_block(const uint16_t *x, long ldx, long k, const uint16_t *w, const int C,
                                                                  float *y, long ldy, long n, const char *pf, int pf_rows, long pf_stride,
                                                                  const struct wide_output *out)
{
    const long full = k & ~31L;
    const __mmask32 tail = (__mmask32)(k == full ? 0 : ((1u << (k - full)) - 1u));
    __m512 acc[WIDE_W][WIDE_X];
#pragma GCC unroll 16
    for (int c = 0; c < C; c++)
#pragma GCC unroll 16
        for (int m = 0; m < WIDE_X; m++)
            acc[c][m] = _mm512_setzero_ps();
    for (long i = 0; i < full; i += 32)
    {
        for (int r = 0; r < pf_rows; r++)
            _mm_prefetch(pf + r * pf_stride + i * 2, _MM_HINT_T1);
        __m512bh xv[WIDE_X];
#pragma GCC unroll 16
        for (int m = 0; m < WIDE_X; m++)
            xv[m] = (__m512bh)_mm512_loadu_si512(x + m * ldx + i);
#pragma GCC unroll 16
        for (int c = 0; c < C; c++)
        {
            __m512bh wv = (__m512bh)_mm512_loadu_si512(w + (n + c) * k + i);
#pragma GCC unroll 16
            for (int m = 0; m < WIDE_X; m++)
                acc[c][m] = _mm512_dpbf16_ps(acc[c][m], wv, xv[m]);
        }
    }
    if (tail)
    {
        __m512bh xv[WIDE_X];
#pragma GCC unroll 16
        for (int m = 0; m < WIDE_X; m++)
            xv[m] = (__m512bh)_mm512_maskz_loadu_epi16(tail, x + m * ldx + full);
#pragma GCC unroll 16
        for (int c = 0; c < C; c++)
        {
            __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(tail, w + (n + c) * k + full);
#pragma GCC unroll 16
            for (int m = 0; m < WIDE_X; m++)
                acc[c][m] = _mm512_dpbf16_ps(acc[c][m], wv, xv[m]);
        }
    }
    if (out && C == WIDE_W)
    {
        wide_store16(wide_sums16(acc), out, 1, n);
        return;
    }
#pragma GCC unroll 16
    for (int c = 0; c < C; c++)
    {
        float b = out && out->bias ? serving_from_bf16(((const uint16_t *)out->bias)[n + c]) : 0.0f;
#pragma GCC unroll 16
        for (int m = 0; m < WIDE_X; m++)
        {
            if (out)
                serving_store(out->y, out->out_f32, m * out->ldy + n + c, serving_sum16(acc[c][m]) + b);
            else
                y[(n + c) * ldy + m] = serving_sum16(acc[c][m]);
        }
    }
}

static inline __attribute__((always_inline)) void f32_wide_block(const float *x, long ldx, long k, const float *w, const int C,
                                                                 float *y, long ldy, long n, const char *pf, int pf_rows, long pf_stride,
                                                                 const struct wide_output *out)
{
    const long full = k & ~15L;
    const __mmask16 tail = (__mmask16)(k == full ? 0 : ((1u << (k - full)) - 1u));
    __m512 acc[WIDE_W][WIDE_X];
#pragma GCC unroll 16
    for (int c = 0; c < C; c++)
#pragma GCC unroll 16
        for (int m = 0; m < WIDE_X; m++)
            acc[c][m] = _mm512_setzero_ps();
    for (long i = 0; i < full; i += 16)
    {
        for (int r = 0; r < pf_rows; r++)
            _mm_prefetch(pf + r * pf_stride + i * 4, _MM_HINT_T1);
        __m512 xv[WIDE_X];
#pragma GCC unroll 16
        for (int m = 0; m < WIDE_X; m++)
            xv[m] = _mm512_loadu_ps(x + m * ldx + i);
#pragma GCC unroll 16
        for (int c = 0; c < C; c++)
        {
            __m512 wv = _mm512_loadu_ps(w + (n + c) * k + i);
#pragma GCC unroll 16
            for (int m = 0; m < WIDE_X; m++)
                acc[c][m] = _mm512_fmadd_ps(wv, xv[m], acc[c][m]);
        }
    }
    if (tail)
    {
        __m512 xv[WIDE_X];
#pragma GCC unroll 16
        for (int m = 0; m < WIDE_X; m++)
            xv[m] = _mm512_maskz_loadu_ps(tail, x + m * ldx + full);
#pragma GCC unroll 16
        for (int c = 0; c < C; c++)
        {
            __m512 wv = _mm512_maskz_loadu_ps(tail, w + (n + c) * k + full);
#pragma GCC unroll 16
            for (int m = 0; m < WIDE_X; m++)
                acc[c][m] = _mm512_fmadd_ps(wv, xv[m], acc[c][m]);
        }
    }
    if (out && C == WIDE_W)
    {
        wide_store16(wide_sums16(acc), out, 0, n);
        return;
    }
#pragma GCC unroll 16
    for (int c = 0; c < C; c++)
    {
        float b = out && out->bias ? ((const float *)out->bias)[n + c] : 0.0f;
#pragma GCC unroll 16
        for (int m = 0; m < WIDE_X; m++)
        {
            if (out)
                ((float *)out->y)[m * out->ldy + n + c] = serving_sum16(acc[c][m]) + b;
            else
                y[(n + c) * ldy + m] = serving_sum16(acc[c][m]);
        }
    }
}

/* bfloat16 x [rows, ldx ≥ k] (rows a multiple of 4) and W [N, k]; float32 y [N, ldy ≥ rows]; outputs n0 ≤ n < n1. */
void serving_wide_bf16(const uint16_t *x, int rows, long ldx, long k, const uint16_t *w, float *y, long ldy, long n0, long n1)
{
    long n = n0;
    for (; n + WIDE_W <= n1; n += WIDE_W)
        for (int m0 = 0; m0 + WIDE_X <= rows; m0 += WIDE_X)
        {
            struct wide_prefetch p = wide_prefetch_for(w, 2, k, rows, m0, n, n1);
            bf16_wide_block(x + (long)m0 * ldx, ldx, k, w, WIDE_W, y + m0, ldy, n, p.start, p.rows, p.stride, NULL);
        }
    for (; n < n1; n++)
        for (int m0 = 0; m0 + WIDE_X <= rows; m0 += WIDE_X)
            bf16_wide_block(x + (long)m0 * ldx, ldx, k, w, 1, y + m0, ldy, n, 0, 0, 0, NULL);
}

/* float32 x [rows, ldx ≥ k] (rows a multiple of 4), W [N, k] and y [N, ldy ≥ rows]; outputs n0 ≤ n < n1. */
void serving_wide_f32(const float *x, int rows, long ldx, long k, const float *w, float *y, long ldy, long n0, long n1)
{
    long n = n0;
    for (; n + WIDE_W <= n1; n += WIDE_W)
        for (int m0 = 0; m0 + WIDE_X <= rows; m0 += WIDE_X)
        {
            struct wide_prefetch p = wide_prefetch_for(w, 4, k, rows, m0, n, n1);
            f32_wide_block(x + (long)m0 * ldx, ldx, k, w, WIDE_W, y + m0, ldy, n, p.start, p.rows, p.stride, NULL);
        }
    for (; n < n1; n++)
        for (int m0 = 0; m0 + WIDE_X <= rows; m0 += WIDE_X)
            f32_wide_block(x + (long)m0 * ldx, ldx, k, w, 1, y + m0, ldy, n, 0, 0, 0, NULL);
}

/*
 * Projections of more rows than the GEMV kernel takes (a decode step of 5 to 64 sequences): y[m][n] = Σ_k x[m][k]·W[n][k]
 * + bias[n] for x [rows, k] (row stride k), W [N, k], y [rows, ldy], as serving_gemv_bf16 / serving_gemv_f32 compute for
 * up to 4 rows. Rows in groups of 4 take the wide blocks above (4 weight rows × 4 rows, the weight streamed from memory
 * once and reused from cache by every group), the last rows % 4 the GEMV row kernel. Why: libtorch's bf16 GEMM ran these
 * shapes far below the arithmetic rate on AVX512-BF16 (docs/benchmarks/engine.md). A row's sums run in an order set by
 * its place in the batch (a group of 4, or the remainder), not by its batch mates' values.
 */
void serving_gemm_bf16_rows(const uint16_t *x, int rows, long k, const uint16_t *w, const uint16_t *bias, void *y, long ldy, int out_f32,
                            long n0, long n1)
{
    const int grouped = rows & ~(WIDE_X - 1), rest = rows - grouped;
    struct wide_output out = {y, ldy, bias, out_f32};
    long n = n0;
    for (; n + WIDE_W <= n1; n += WIDE_W)
        for (int m0 = 0; m0 < grouped; m0 += WIDE_X)
        {
            struct wide_prefetch p = wide_prefetch_for(w, 2, k, grouped, m0, n, n1);
            out.y = out_f32 ? (void *)((float *)y + m0 * ldy) : (void *)((uint16_t *)y + m0 * ldy);
            bf16_wide_block(x + (long)m0 * k, k, k, w, WIDE_W, NULL, 0, n, p.start, p.rows, p.stride, &out);
        }
    for (; n < n1; n++)
        for (int m0 = 0; m0 < grouped; m0 += WIDE_X)
        {
            out.y = out_f32 ? (void *)((float *)y + m0 * ldy) : (void *)((uint16_t *)y + m0 * ldy);
            bf16_wide_block(x + (long)m0 * k, k, k, w, 1, NULL, 0, n, 0, 0, 0, &out);
        }
    if (rest)
        serving_gemv_bf16(x + (long)grouped * k, rest, k, w, bias, out_f32 ? (void *)((float *)y + grouped * ldy) : (void *)((uint16_t *)y + grouped * ldy),
                          ldy, out_f32, n0, n1);
}

/* serving_gemm_bf16_rows for float32 x, W, bias and y. */
void serving_gemm_f32_rows(const float *x, int rows, long k, const float *w, const float *bias, float *y, long ldy, long n0, long n1)
{
    const int grouped = rows & ~(WIDE_X - 1), rest = rows - grouped;
    struct wide_output out = {y, ldy, bias, 1};
    long n = n0;
    for (; n + WIDE_W <= n1; n += WIDE_W)
        for (int m0 = 0; m0 < grouped; m0 += WIDE_X)
        {
            struct wide_prefetch p = wide_prefetch_for(w, 4, k, grouped, m0, n, n1);
            out.y = y + m0 * ldy;
            f32_wide_block(x + (long)m0 * k, k, k, w, WIDE_W, NULL, 0, n, p.start, p.rows, p.stride, &out);
        }
    for (; n < n1; n++)
        for (int m0 = 0; m0 < grouped; m0 += WIDE_X)
        {
            out.y = y + m0 * ldy;
            f32_wide_block(x + (long)m0 * k, k, k, w, 1, NULL, 0, n, 0, 0, 0, &out);
        }
    if (rest)
        serving_gemv_f32(x + (long)grouped * k, rest, k, w, bias, y + grouped * ldy, ldy, n0, n1);
}
