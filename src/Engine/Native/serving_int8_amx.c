/*
 * int8 projections on Intel AMX (Serving.Engine.Kernels.Int8AmxNative): the twin of serving_gemm_s8_packed
 * (serving_int8.c) for calls of many rows, with the same arguments, the same packed weights (Int8Matrix), the same integer
 * sums and the same epilogue (serving_int8.h), so a row's outputs are the same bit for bit on either kernel:
 *     y[m][n] = round( xscale[m] · wscale[n] · (Σ_k xu[m][k]·w[n][k] − 128·wsum[n]) + bias[n] )
 *
 * Why: VPDPBUSD adds 64 products an instruction, and from about 6 rows the multiply-adds of a decode step take as long as
 * reading its weights (docs/benchmarks/int8.md); a prefill is bound by them. TDPBUSD adds up to 16 rows × 16 outputs × 64
 * inputs an instruction.
 *
 * The packed weights need no layout of their own: a group of 4 inputs × 64 outputs is 4 vectors of 64 bytes, vector j
 * holding inputs 4q..4q+3 of outputs 16j..16j+15, which is one row of TDPBUSD's B operand (K/4 rows of 16 outputs × 4
 * bytes). The B tile of (block, j, groups q0..q0+15) is therefore 16 rows of 64 bytes 256 bytes apart in the stream; the A
 * tile is up to 16 input rows × 64 offset bytes (unsigned, as TDPBUSD wants) k bytes apart; C is 4 tiles of rows × 16
 * int32 sums, one per j.
 *
 * Tiles: tmm0–3 the sums (rows × 64 bytes), tmm4 A (rows × 64), tmm5 B (16 × 64), tmm6 the A of a block's last, short
 * run of groups (rows × 4·tail bytes) and tmm7 its B (tail × 64). The configuration depends only on a chunk's rows (≤ 16),
 * so a call loads it at most twice: for its chunks of 16 rows and for a last, shorter one.
 * Needs k % 4 == 0 (the A tile reads whole groups of the row); callers send other shapes to the VNNI kernel.
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "serving_cpu.h"
#include "serving_int8.h"
#include "serving_tile.h"

#ifdef SERVING_TILE_EMULATION
#define S8AMX_EXPORT(name) name##_emulated
#else
#define S8AMX_EXPORT(name) name
#endif

/* Groups (of 4 inputs) one TDPBUSD takes: 64 inputs, an A tile row of 64 bytes and a B tile of 16 rows. */
#define AMX_RUN_GROUPS 16
/* Bytes of weight ahead of the run being multiplied that a block's first chunk of rows prefetches (two runs). */
#define AMX_PREFETCH_BYTES 8192

#ifndef SERVING_TILE_EMULATION
/* 1 when the CPU has AMX-TILE, AMX-INT8 and AVX512-F/BW (the epilogue), and the OS and the kernel let this process use tiles. */
int serving_int8_amx_init(void)
{
    serving_cpu cpu;
    if (!serving_cpu_read(&cpu) || !cpu.amx_tile || !cpu.amx_int8 || !cpu.avx512f || !cpu.avx512bw || (cpu.xcr0 & 0xE6) != 0xE6)
        return 0;
    return serving_tile_permission(cpu.xcr0);
}
#endif

/* Palette 1 for chunks of `rows` input rows and a last run of `tail` groups (0: none). */
static void s8amx_configure(int rows, int tail)
{
    serving_tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 4; t++) {
        cfg.rows[t] = (uint8_t)rows;
        cfg.colsb[t] = 64;
    }
    cfg.rows[4] = (uint8_t)rows;
    cfg.colsb[4] = 64;
    cfg.rows[5] = AMX_RUN_GROUPS;
    cfg.colsb[5] = 64;
    if (tail) {
        cfg.rows[6] = (uint8_t)rows;
        cfg.colsb[6] = (uint16_t)(4 * tail);
        cfg.rows[7] = (uint8_t)tail;
        cfg.colsb[7] = 64;
    }
    TILE_CONFIG(&cfg);
}

/*
 * Sum tiles 0–3 += A tile a (the chunk's bytes of one run, from x, rows k bytes apart) · the run's four B tiles (vectors j
 * of its groups, 256 bytes apart), loaded in turn into tile b. Tile numbers are the instructions' immediates, hence a macro.
 */
#define S8AMX_RUN(a, b, x, run, k)             \
    do {                                       \
        TILE_LOAD(a, x, k);                    \
        TILE_LOAD(b, run, 256);                \
        TILE_DPBUSD(0, a, b);                  \
        TILE_LOAD(b, (run) + 64, 256);         \
        TILE_DPBUSD(1, a, b);                  \
        TILE_LOAD(b, (run) + 128, 256);        \
        TILE_DPBUSD(2, a, b);                  \
        TILE_LOAD(b, (run) + 192, 256);        \
        TILE_DPBUSD(3, a, b);                  \
    } while (0)

/*
 * Input rows [m0, m0 + rows) (rows ≤ 16, the tiles configured for them) against one packed block of 64 outputs starting
 * at output n, written to y [·, ldy]; prefetches the block's stream up to prefetch_end (0: none).
 */
static void s8amx_chunk(const uint8_t *xu, long rows, long k, const int8_t *block, const int8_t *prefetch_end, const float *xscale,
                        const float *wscale, const int32_t *wsum, const void *bias, int bf16_io, void *y, long ldy, int out_f32, long n, long N)
{
    const long groups = k / INT8_GROUP, runs = groups / AMX_RUN_GROUPS, tail = groups % AMX_RUN_GROUPS;
    const long run_bytes = AMX_RUN_GROUPS * INT8_GROUP * INT8_BLOCK;
    TILE_ZERO(0);
    TILE_ZERO(1);
    TILE_ZERO(2);
    TILE_ZERO(3);
    for (long r = 0; r < runs; r++) {
        const int8_t *run = block + r * run_bytes;
        if (prefetch_end)
            for (const char *p = (const char *)run + AMX_PREFETCH_BYTES, *stop = p + run_bytes; p < stop && p < (const char *)prefetch_end; p += 64)
                _mm_prefetch(p, _MM_HINT_T0);
        S8AMX_RUN(4, 5, xu + r * 64, run, k);
    }
    if (tail)
        S8AMX_RUN(6, 7, xu + runs * 64, block + runs * run_bytes, k);
    int32_t sums[16][64] __attribute__((aligned(64)));
    TILE_STORE(0, &sums[0][0], 256);
    TILE_STORE(1, &sums[0][16], 256);
    TILE_STORE(2, &sums[0][32], 256);
    TILE_STORE(3, &sums[0][48], 256);
    for (long m = 0; m < rows; m++) {
        void *row = out_f32 ? (void *)((float *)y + m * ldy) : (void *)((uint16_t *)y + m * ldy);
        for (int j = 0; j < 4; j++)
            if (n + 16 * j < N)
                s8_store16(_mm512_load_si512(&sums[m][16 * j]), xscale[m], wscale, wsum, bias, bf16_io, row, out_f32, n + 16 * j, N);
    }
}

/*
 * serving_gemm_s8_packed's arguments and results (serving_int8.c), k % 4 == 0: xu [rows, k] quantized input rows offset by
 * 128; xscale [rows]; w packed [ceil(N / 64) blocks][k / 4][64][4] int8; wscale, wsum [N]; bias [N] (bfloat16 when bf16_io,
 * else float32) or NULL; y [rows, ldy], float32 when out_f32, else bfloat16; the outputs of blocks b0 ≤ b < b1 are written.
 */
void S8AMX_EXPORT(serving_gemm_s8_amx)(const uint8_t *xu, const float *xscale, long rows, long k, const int8_t *w, const float *wscale,
                                        const int32_t *wsum, const void *bias, int bf16_io, void *y, long ldy, int out_f32, long N, long b0, long b1)
{
    const long tail = k / INT8_GROUP % AMX_RUN_GROUPS;
    const int8_t *end_of_blocks = w + b1 * INT8_BLOCK * k;
    int configured = 0;
    for (long first = 0; first < rows; first += INT8_ROW_BLOCK) {
        const long end = rows - first < INT8_ROW_BLOCK ? rows : first + INT8_ROW_BLOCK;
        for (long b = b0; b < b1; b++) {
            const int8_t *block = w + b * INT8_BLOCK * k;
            for (long m0 = first; m0 < end; m0 += 16) {
                const int chunk = (int)(end - m0 < 16 ? end - m0 : 16);
                if (chunk != configured) {
                    s8amx_configure(chunk, (int)tail);
                    configured = chunk;
                }
                /* The block's first chunk streams it from memory; the later ones find it in L2 (64 outputs × k bytes). */
                s8amx_chunk(xu + m0 * k, chunk, k, block, m0 == first ? end_of_blocks : NULL, xscale + m0, wscale, wsum, bias, bf16_io,
                            out_f32 ? (void *)((float *)y + m0 * ldy) : (void *)((uint16_t *)y + m0 * ldy), ldy, out_f32, b * INT8_BLOCK, N);
            }
        }
    }
    if (configured)
        TILE_RELEASE();
}
