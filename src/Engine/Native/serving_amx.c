/*
 * bfloat16 projections on Intel AMX for the CPU engine (Serving.Engine.Kernels.AmxLinear).
 *
 * Why this exists: libtorch's bf16 linear reaches oneDNN's AMX matmul with the weight in its plain [out, in] layout,
 * so every call first reorders the whole weight into AMX's pair-interleaved blocks (read + write + read of all of it).
 * A decode step is a weight-streaming problem, so that triples its memory traffic. Here each weight is reordered once,
 * at load, and a call only streams it.
 *
 * Packed weight layout, for a logical W[n][k] (n < N, k < K), Np = N rounded up to 32, Kp = K rounded up to 32,
 * KB = Kp / 32, zero padding:
 *     packed[((nb * KB + kb) * 16 + kp) * 32 + j * 2 + e] = W[nb * 16 + j][kb * 32 + kp * 2 + e]
 * i.e. one 1 KiB tile per (16 outputs, 32 inputs): the B operand of TDPBF16PS, rows = input pairs, columns = outputs.
 *
 * y[m][n] = bf16( Σ_k x[m][k] · W[n][k] + bias[n] ), float32 accumulation, round to nearest even (as oneDNN does).
 * The tile instructions go through serving_tile.h, so that serving_tile_emulated.c can build the kernel without AMX.
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "serving_cpu.h"
#include "serving_tile.h"

#ifdef SERVING_TILE_EMULATION
#define AMX_EXPORT(name) name##_emulated
#else
#define AMX_EXPORT(name) name
#endif

/* Tiles ahead of the one being multiplied that each weight stream prefetches (2–4 measured alike; 16 slower). */
#define PREFETCH_TILES 2

static int64_t round_up32(int64_t v) { return (v + 31) & ~(int64_t)31; }

#ifndef SERVING_TILE_EMULATION
/* 1 when this CPU has AMX-BF16 and AVX512-BF16, the OS saves tile state and the process may use it. */
int serving_amx_init(void)
{
    serving_cpu cpu;
    if (!serving_cpu_read(&cpu) || !cpu.amx_bf16 || !cpu.amx_tile || !cpu.avx512f || !cpu.avx512_bf16)
        return 0;
    return serving_tile_permission(cpu.xcr0);
}

/* Elements of the packed form of an [n, k] weight. */
int64_t serving_amx_packed_elements(int64_t n, int64_t k) { return round_up32(n) * round_up32(k); }

/*
 * Packs the 32-output blocks [block_begin, block_end) of w ([n, k] bf16, row-major) into packed. Block b of the packed
 * form covers exactly the elements [b·32·Kp, (b+1)·32·Kp), which for n and k multiples of 32 are the ones rows
 * 32b..32b+31 occupy in w: each block is copied out before it is written, so packed may be w itself (packing in place,
 * no second copy of the weight). Returns 0, or -1 when the scratch block cannot be allocated.
 */
int serving_amx_pack(const uint16_t *w, int64_t n, int64_t k, uint16_t *packed, int64_t block_begin, int64_t block_end)
{
    int64_t kp = round_up32(k), kb_count = kp / 32;
    uint16_t *rows = malloc((size_t)32 * kp * 2);
    if (!rows)
        return -1;
    for (int64_t block = block_begin; block < block_end; block++) {
        for (int64_t r = 0; r < 32; r++) {
            int64_t row = block * 32 + r;
            if (row < n) {
                memcpy(rows + r * kp, w + row * k, (size_t)k * 2);
                memset(rows + r * kp + k, 0, (size_t)(kp - k) * 2);
            } else {
                memset(rows + r * kp, 0, (size_t)kp * 2);
            }
        }
        for (int64_t r = 0; r < 32; r++) {
            int64_t nb = block * 2 + r / 16, j = r % 16;
            for (int64_t kb = 0; kb < kb_count; kb++) {
                uint16_t *tile = packed + (nb * kb_count + kb) * 512 + j * 2;
                const uint16_t *src = rows + r * kp + kb * 32;
                for (int64_t i = 0; i < 32; i++)
                    tile[(i / 2) * 32 + (i % 2)] = src[i];
            }
        }
    }
    free(rows);
    return 0;
}

/* Copies rows ids[0..count) of the packed weight back to plain [count, k] bf16 (embedding lookups of a tied lm_head). */
void serving_amx_gather_rows(const uint16_t *packed, int64_t n, int64_t k, const int64_t *ids, int64_t count, uint16_t *out)
{
    int64_t kb_count = round_up32(k) / 32;
    for (int64_t r = 0; r < count; r++) {
        int64_t row = ids[r], nb = row / 16, j = row % 16;
        (void)n;
        for (int64_t col = 0; col < k; col++) {
            int64_t kb = col / 32, i = col % 32;
            out[r * k + col] = packed[(nb * kb_count + kb) * 512 + (i / 2) * 32 + j * 2 + (i % 2)];
        }
    }
}

/* Copies x ([m, k] bf16) into xp ([round_up32(m), round_up32(k)]) with zero padding: whole tiles can then be loaded. */
void serving_amx_pad_input(const uint16_t *x, int64_t m, int64_t k, uint16_t *xp)
{
    int64_t mp = round_up32(m), kp = round_up32(k);
    for (int64_t r = 0; r < mp; r++) {
        if (r < m) {
            memcpy(xp + r * kp, x + r * k, (size_t)k * 2);
            memset(xp + r * kp + k, 0, (size_t)(kp - k) * 2);
        } else {
            memset(xp + r * kp, 0, (size_t)kp * 2);
        }
    }
}
#endif

static void load_config(void)
{
    serving_tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    TILE_CONFIG(&cfg);
}

static inline float bf16_to_float(uint16_t v)
{
    uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/*
 * Rounds 32 sums of one output row (plus bias) to bf16 and stores the first `valid` of them: as bf16, or as the float32
 * values of those bf16 numbers (the lm_head's logits, which callers want in float32: a bf16 linear followed by a cast).
 */
static inline void store_row(const float *sums, const float *bias32, void *dst, int valid, int out_f32)
{
    __m512 lo = _mm512_loadu_ps(sums), hi = _mm512_loadu_ps(sums + 16);
    if (bias32) {
        lo = _mm512_add_ps(lo, _mm512_loadu_ps(bias32));
        hi = _mm512_add_ps(hi, _mm512_loadu_ps(bias32 + 16));
    }
    __m512i rounded = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    __mmask32 mask = valid >= 32 ? 0xFFFFFFFFu : ((1u << valid) - 1u);
    if (!out_f32) {
        _mm512_mask_storeu_epi16(dst, mask, rounded);
        return;
    }
    __m512i first = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(rounded)), 16);
    __m512i second = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(rounded, 1)), 16);
    _mm512_mask_storeu_epi32(dst, (__mmask16)mask, first);
    _mm512_mask_storeu_epi32((float *)dst + 16, (__mmask16)(mask >> 16), second);
}

/*
 * y[m, n] = x · Wᵀ (+ bias) for the output columns of blocks [block_begin, block_end), a block being 32 outputs; y is
 * bf16, or float32 holding bf16-rounded values when out_f32.
 * xp: the input padded by serving_amx_pad_input (or x itself when m and k are multiples of 32), row stride round_up32(k).
 * Callers split the blocks over threads; each call configures the tiles of its own thread.
 */
void AMX_EXPORT(serving_amx_linear)(const uint16_t *xp, int64_t m, int64_t k, const uint16_t *packed, int64_t n, const uint16_t *bias,
                        void *y, int out_f32, int64_t block_begin, int64_t block_end)
{
    int64_t kp = round_up32(k), kb_count = kp / 32, mp = round_up32(m);
    size_t x_stride = (size_t)kp * 2;
    float sums[32 * 32] __attribute__((aligned(64)));
    float bias32[32] __attribute__((aligned(64)));
    load_config();
    for (int64_t block = block_begin; block < block_end; block++) {
        int64_t n0 = block * 32;
        int valid_cols = (int)(n - n0 < 32 ? n - n0 : 32);
        if (bias) {
            for (int j = 0; j < 32; j++)
                bias32[j] = j < valid_cols ? bf16_to_float(bias[n0 + j]) : 0.0f;
        }
        const uint16_t *b0 = packed + (block * 2) * kb_count * 512;
        const uint16_t *b1 = b0 + kb_count * 512;
        for (int64_t m0 = 0; m0 < mp; m0 += 32) {
            const uint16_t *a0 = xp + m0 * kp, *a1 = a0 + 16 * kp;
            TILE_ZERO(0);
            TILE_ZERO(1);
            TILE_ZERO(2);
            TILE_ZERO(3);
            for (int64_t kb = 0; kb < kb_count; kb++) {
                if (m0 == 0) {
                    /* Weight tiles arrive from DRAM; the hardware prefetcher alone reached ~13 of 21 GB/s, with this ~18. */
                    const char *p0 = (const char *)(b0 + (kb + PREFETCH_TILES) * 512);
                    const char *p1 = (const char *)(b1 + (kb + PREFETCH_TILES) * 512);
                    for (int line = 0; line < 1024; line += 64) {
                        _mm_prefetch(p0 + line, _MM_HINT_T0);
                        _mm_prefetch(p1 + line, _MM_HINT_T0);
                    }
                }
                TILE_LOAD(4, a0 + kb * 32, x_stride);
                TILE_LOAD(5, a1 + kb * 32, x_stride);
                TILE_LOAD(6, b0 + kb * 512, 64);
                TILE_LOAD(7, b1 + kb * 512, 64);
                TILE_DPBF16PS(0, 4, 6);
                TILE_DPBF16PS(1, 4, 7);
                TILE_DPBF16PS(2, 5, 6);
                TILE_DPBF16PS(3, 5, 7);
            }
            TILE_STORE(0, sums, 128);
            TILE_STORE(1, sums + 16, 128);
            TILE_STORE(2, sums + 16 * 32, 128);
            TILE_STORE(3, sums + 16 * 32 + 16, 128);
            int64_t rows = m - m0 < 32 ? m - m0 : 32;
            for (int64_t r = 0; r < rows; r++)
                store_row(sums + r * 32, bias ? bias32 : 0,
                          out_f32 ? (void *)((float *)y + (m0 + r) * n + n0) : (void *)((uint16_t *)y + (m0 + r) * n + n0),
                          valid_cols, out_f32);
        }
    }
    TILE_RELEASE();
}
