/*
 * bfloat16 LoRA updates of single decode rows on AVX512-BF16 (Serving.Engine.Kernels.LoraNative), for CPUs with or without
 * AMX.
 *
 * Why this exists: the C# row kernel widens each bf16 weight to float32 (a shift or a mask per 16 values) before its FMAs.
 * On AMD Zen 5 that loop runs at ~20 GB/s per core, half of what one core can read, so a step in which every row has its
 * own adapter was compute-bound there (measured: 32 distinct rank-16 adapters, 149 MB, 5.9 ms on 2 cores). VDPBF16PS
 * multiplies bf16 pairs as they are stored and accumulates in float32: one instruction per 64 bytes of weight.
 *
 * For `rows` (1..LORA_MAX_ROWS) input rows x_m that use one adapter on one projection (A [rank, in], Bt [rank, out], both bf16,
 * row-major, as LoraModuleArena stores them):
 *     h[m][j] = bf16( factor[m] · Σ_i A[j][i] · x_m[i] )           j < rank, float32 sums (the same rounding of the
 *                                                                   intermediate as a bf16 PEFT model's lora_A output)
 *     y_m[o]  = bf16( y_m[o] + Σ_j h[m][j] · Bt[j][o] )             o < out, float32 sums, one rounding
 * VDPBF16PS sums pairs: the shrink pairs neighbouring inputs (A rows and x as stored); the expand pairs neighbouring j,
 * interleaving two Bt rows with VPUNPCK{L,H}WD, which permutes the outputs within each 128-bit lane. The y row is widened
 * with the same unpacks, so sums and y line up, and the two rounded halves are put back in order at the store.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "serving_cpu.h"

/*
 * The expand reads rank rows of Bt side by side, 64 bytes of each per 32 outputs: more streams than the hardware
 * prefetcher follows. Prefetching each row 128 elements (256 bytes) ahead: 32 distinct adapters' step 4.7 -> 4.2 ms
 * (Zen 5, 2 cores; 64 and 256 elements measured slower, prefetching the shrink's 4 rows changed nothing).
 */
#define PREFETCH_EXPAND 128

/* Most rows one call takes (LoraNative.MaxRows). */
#define LORA_MAX_ROWS 32

/* 1 when the CPU has AVX512-F/BW and AVX512-BF16 and the OS saves the AVX-512 state. */
int serving_lora_bf16_init(void) { return serving_cpu_has_avx512_bf16(); }

static inline __mmask32 mask_of(int valid) { return valid >= 32 ? 0xFFFFFFFFu : ((1u << valid) - 1u); }

/*
 * s[m · NQ + q] = Σ_i A[j0 + q][i] · x_m[i] for m < R, q < NQ, R · NQ ≤ 16 (NQ rows of A, each loaded once for all R input
 * rows). A lone row takes 8 or 16 rows of A at a time: with four sums it waited on VDPBF16PS latency.
 */
static inline __attribute__((always_inline)) void shrink_block(const uint16_t *const *x, const uint16_t *a, int in, int j0, int R,
                                                              int NQ, float *s)
{
    __m512 acc[4][16];
    #pragma GCC unroll 4
    for (int m = 0; m < R; m++)
        #pragma GCC unroll 16
        for (int q = 0; q < NQ; q++)
            acc[m][q] = _mm512_setzero_ps();
    /* Addressed from one base (not an array of NQ row pointers): with 16 rows the pointers no longer fitted in registers. */
    const uint16_t *row0 = a + (int64_t)j0 * in;
    int i = 0;
    for (; i + 32 <= in; i += 32) {
        __m512bh xv[4];
        #pragma GCC unroll 4
        for (int m = 0; m < R; m++)
            xv[m] = (__m512bh)_mm512_loadu_si512(x[m] + i);
        #pragma GCC unroll 16
        for (int q = 0; q < NQ; q++) {
            __m512bh w = (__m512bh)_mm512_loadu_si512(row0 + (int64_t)q * in + i);
            #pragma GCC unroll 4
            for (int m = 0; m < R; m++)
                acc[m][q] = _mm512_dpbf16_ps(acc[m][q], w, xv[m]);
        }
    }
    if (i < in) {
        __mmask32 k = mask_of(in - i);
        __m512bh xv[4];
        #pragma GCC unroll 4
        for (int m = 0; m < R; m++)
            xv[m] = (__m512bh)_mm512_maskz_loadu_epi16(k, x[m] + i);
        #pragma GCC unroll 16
        for (int q = 0; q < NQ; q++) {
            __m512bh w = (__m512bh)_mm512_maskz_loadu_epi16(k, row0 + (int64_t)q * in + i);
            #pragma GCC unroll 4
            for (int m = 0; m < R; m++)
                acc[m][q] = _mm512_dpbf16_ps(acc[m][q], w, xv[m]);
        }
    }
    #pragma GCC unroll 4
    for (int m = 0; m < R; m++)
        #pragma GCC unroll 16
        for (int q = 0; q < NQ; q++)
            s[m * NQ + q] = _mm512_reduce_add_ps(acc[m][q]);
}

/* Rows 2p and 2p + 1 of Bt at r0 (the second zero past the rank), interleaved for VDPBF16PS: wl holds the pairs of
 * outputs 8g .. 8g + 3, wh of 8g + 4 .. 8g + 7 (g < 4). FULL: all 32 outputs valid, plain loads. (Prefetching is done
 * once per column block by the caller, not once per group of rows.) */
static inline __attribute__((always_inline)) void load_pair(const uint16_t *r0, int out, int second, __mmask32 k, int FULL,
                                                           __m512bh *wl, __m512bh *wh)
{
    __m512i w0 = FULL ? _mm512_loadu_si512(r0) : _mm512_maskz_loadu_epi16(k, r0);
    __m512i w1 = _mm512_setzero_si512();
    if (second)
        w1 = FULL ? _mm512_loadu_si512(r0 + out) : _mm512_maskz_loadu_epi16(k, r0 + out);
    *wl = (__m512bh)_mm512_unpacklo_epi16(w0, w1);
    *wh = (__m512bh)_mm512_unpackhi_epi16(w0, w1);
}

/*
 * y_m[o0 .. o0 + valid) += Σ_j h[m][j] · Bt[j][o0 ..] for m < R (1..8), hp[m][p] holding h[m][2p] (low half) and
 * h[m][2p + 1] as bf16. Each pair of Bt rows is loaded and interleaved once for all R rows. A single row takes two pairs
 * per iteration: with one row the loop's bookkeeping, not the arithmetic, bounded it (Zen 5: 14 instructions per pair
 * for two VDPBF16PS). Every R sums the pairs in the same order, so a row's result does not depend on the rows that
 * share its call (the batch it runs in).
 */
static inline __attribute__((always_inline)) void expand_block(const uint16_t *bt, int out, int rank, int o0, int valid, int R,
                                                              int FULL, const uint32_t hp[][32], uint16_t *const *y)
{
    __m512 lo[8], hi[8];
    #pragma GCC unroll 8
    for (int m = 0; m < R; m++) {
        lo[m] = _mm512_setzero_ps();
        hi[m] = _mm512_setzero_ps();
    }
    __mmask32 k = mask_of(valid);
    const uint16_t *base = bt + o0;
    int whole = rank / 2, p = 0;
    __m512bh wl, wh;
    if (R == 1)
        for (; p + 2 <= whole; p += 2) {
            __m512bh wl1, wh1;
            load_pair(base + (int64_t)(2 * p) * out, out, 1, k, FULL, &wl, &wh);
            load_pair(base + (int64_t)(2 * p + 2) * out, out, 1, k, FULL, &wl1, &wh1);
            __m512bh h0 = (__m512bh)_mm512_set1_epi32((int)hp[0][p]), h1 = (__m512bh)_mm512_set1_epi32((int)hp[0][p + 1]);
            lo[0] = _mm512_dpbf16_ps(_mm512_dpbf16_ps(lo[0], wl, h0), wl1, h1);
            hi[0] = _mm512_dpbf16_ps(_mm512_dpbf16_ps(hi[0], wh, h0), wh1, h1);
        }
    for (; p < (rank + 1) / 2; p++) {
        load_pair(base + (int64_t)(2 * p) * out, out, p < whole, k, FULL, &wl, &wh);
        #pragma GCC unroll 8
        for (int m = 0; m < R; m++) {
            __m512bh hv = (__m512bh)_mm512_set1_epi32((int)hp[m][p]);
            lo[m] = _mm512_dpbf16_ps(lo[m], wl, hv);
            hi[m] = _mm512_dpbf16_ps(hi[m], wh, hv);
        }
    }
    /* Output order of the unpacks: lane 4g + t of lo is output 8g + t, of hi output 8g + 4 + t (g < 4, t < 4). */
    const __m512i order = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
    #pragma GCC unroll 8
    for (int m = 0; m < R; m++) {
        __m512i yv = FULL ? _mm512_loadu_si512(y[m] + o0) : _mm512_maskz_loadu_epi16(k, y[m] + o0);
        __m512 ylo = _mm512_castsi512_ps(_mm512_unpacklo_epi16(_mm512_setzero_si512(), yv));
        __m512 yhi = _mm512_castsi512_ps(_mm512_unpackhi_epi16(_mm512_setzero_si512(), yv));
        __m256i rl = (__m256i)_mm512_cvtneps_pbh(_mm512_add_ps(ylo, lo[m]));
        __m256i rh = (__m256i)_mm512_cvtneps_pbh(_mm512_add_ps(yhi, hi[m]));
        __m512i merged = _mm512_permutex2var_epi64(_mm512_castsi256_si512(rl), order, _mm512_castsi256_si512(rh));
        if (FULL)
            _mm512_storeu_si512(y[m] + o0, merged);
        else
            _mm512_mask_storeu_epi16(y[m] + o0, k, merged);
    }
}

/* The shrink of R rows (1..4) against NQ rows of A (1 or 4; for a lone row also 8 or 16), constants after inlining. */
static void shrink_group(const uint16_t *const *x, const uint16_t *a, int in, int j0, int R, int NQ, float *s)
{
    switch (R * 32 + NQ) {
    case 33: shrink_block(x, a, in, j0, 1, 1, s); break;
    case 36: shrink_block(x, a, in, j0, 1, 4, s); break;
    case 40: shrink_block(x, a, in, j0, 1, 8, s); break;
    case 48: shrink_block(x, a, in, j0, 1, 16, s); break;
    case 65: shrink_block(x, a, in, j0, 2, 1, s); break;
    case 68: shrink_block(x, a, in, j0, 2, 4, s); break;
    case 97: shrink_block(x, a, in, j0, 3, 1, s); break;
    case 100: shrink_block(x, a, in, j0, 3, 4, s); break;
    case 129: shrink_block(x, a, in, j0, 4, 1, s); break;
    default: shrink_block(x, a, in, j0, 4, 4, s); break;
    }
}

static void expand_group(const uint16_t *bt, int out, int rank, int o0, int valid, int R, const uint32_t hp[][32], uint16_t *const *y)
{
    if (valid == 32)
        switch (R) {
        case 1: expand_block(bt, out, rank, o0, 32, 1, 1, hp, y); break;
        case 2: expand_block(bt, out, rank, o0, 32, 2, 1, hp, y); break;
        case 3: expand_block(bt, out, rank, o0, 32, 3, 1, hp, y); break;
        case 4: expand_block(bt, out, rank, o0, 32, 4, 1, hp, y); break;
        case 5: expand_block(bt, out, rank, o0, 32, 5, 1, hp, y); break;
        case 6: expand_block(bt, out, rank, o0, 32, 6, 1, hp, y); break;
        case 7: expand_block(bt, out, rank, o0, 32, 7, 1, hp, y); break;
        default: expand_block(bt, out, rank, o0, 32, 8, 1, hp, y); break;
        }
    else
        switch (R) {
        case 1: expand_block(bt, out, rank, o0, valid, 1, 0, hp, y); break;
        case 2: expand_block(bt, out, rank, o0, valid, 2, 0, hp, y); break;
        case 3: expand_block(bt, out, rank, o0, valid, 3, 0, hp, y); break;
        case 4: expand_block(bt, out, rank, o0, valid, 4, 0, hp, y); break;
        case 5: expand_block(bt, out, rank, o0, valid, 5, 0, hp, y); break;
        case 6: expand_block(bt, out, rank, o0, valid, 6, 0, hp, y); break;
        case 7: expand_block(bt, out, rank, o0, valid, 7, 0, hp, y); break;
        default: expand_block(bt, out, rank, o0, valid, 8, 0, hp, y); break;
        }
}

/*
 * The update above for `rows` rows (1..LORA_MAX_ROWS) sharing one adapter; rank 1..64. x[m] and y[m] point at row m's
 * input and at the first output of this projection in row m's output; factor[m] = entry weight · scale.
 * Groups of rows share each weight load (four in the shrink, eight in the expand); every group runs over a block of A
 * (4 rows) and a column block of Bt (rank × 32 outputs) before the next block is read, so the weights come from memory
 * once per call, not once per group.
 */
void serving_lora_bf16_rows(const uint16_t *const *x, const uint16_t *a, const uint16_t *bt, int rows, int rank, int in, int out,
                            const float *factor, uint16_t *const *y)
{
    float h[LORA_MAX_ROWS][64];
    uint32_t hp[LORA_MAX_ROWS][32];
    int groups = (rows + 3) / 4, j = 0;
    if (rows == 1) {
        for (; j + 16 <= rank; j += 16)
            shrink_group(x, a, in, j, 1, 16, h[0] + j);
        for (; j + 8 <= rank; j += 8)
            shrink_group(x, a, in, j, 1, 8, h[0] + j);
    }
    while (j < rank) {
        int nq = rank - j >= 4 ? 4 : 1;
        for (int g = 0; g < groups; g++) {
            int r = rows - 4 * g < 4 ? rows - 4 * g : 4;
            float s[16];
            shrink_group(x + 4 * g, a, in, j, r, nq, s);
            for (int m = 0; m < r; m++)
                for (int q = 0; q < nq; q++)
                    h[4 * g + m][j + q] = s[m * nq + q];
        }
        j += nq;
    }
    int pairs = (rank + 1) / 2;
    for (int m = 0; m < rows; m++)
        for (int p = 0; p < pairs; p++) {
            uint32_t first = serving_to_bf16(factor[m] * h[m][2 * p]);
            uint32_t second = 2 * p + 1 < rank ? serving_to_bf16(factor[m] * h[m][2 * p + 1]) : 0;
            hp[m][p] = first | (second << 16);
        }
    for (int o0 = 0; o0 < out; o0 += 32) {
        for (int j = 0; j < rank; j++)
            _mm_prefetch((const char *)(bt + (int64_t)j * out + o0 + PREFETCH_EXPAND), _MM_HINT_T0);
        for (int g = 0; g < rows; g += 8)
            expand_group(bt, out, rank, o0, out - o0 < 32 ? out - o0 : 32, rows - g < 8 ? rows - g : 8, hp + g, y + g);
    }
}
