/*
 * Intel AMX tile state for the kernels that use it: the tile configuration, the process's permission to use tile data,
 * and the tile instructions of the int8 kernel either on the hardware or, with SERVING_TILE_EMULATION defined, in C.
 *
 * Why an emulation: AMX exists only on some Intel Xeons, and neither this project's machines nor any emulator they can
 * install have it. Emulated, the kernel's own code (tile shapes, strides, the short last chunk of rows and run of inputs)
 * runs on any CPU and is checked against the other int8 kernels. The emulation follows the instructions' definitions in
 * the Intel SDM (LDTILECFG, TILEZERO, TILELOADD, TILESTORED, TDPBUSD, TDPBF16PS, TILERELEASE): loads zero the bytes past
 * a tile's configured columns and rows, TDPBUSD adds unsigned × signed byte products in wrapping 32-bit sums, TDPBF16PS
 * adds products of bf16 pairs (exact in float32) one at a time, rounding to nearest even, with bf16 subnormals read as
 * zero and float32 subnormal results flushed to zero. Where the hardware
 * raises #UD or #GP (an invalid configuration, an unconfigured tile, operands whose shapes do not match, a tile used twice
 * in one TDPBUSD), it counts a fault and keeps the first one's description instead, for the tests to read.
 */
#ifndef SERVING_TILE_H
#define SERVING_TILE_H

#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SERVING_ARCH_GET_XCOMP_PERM 0x1022
#define SERVING_ARCH_REQ_XCOMP_PERM 0x1023
#define SERVING_XFEATURE_XTILEDATA 18

/* LDTILECFG's 64-byte operand (palette 1: 8 tiles of up to 16 rows × 64 bytes). */
typedef struct __attribute__((packed, aligned(64))) {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} serving_tile_config;

/* 1 when the OS saves tile state (XTILECFG and XTILEDATA in XCR0) and grants this process tile data; asks for it first. */
static inline int serving_tile_permission(unsigned xcr0)
{
    if ((xcr0 & 0x60000) != 0x60000)
        return 0;
    if (syscall(SYS_arch_prctl, SERVING_ARCH_REQ_XCOMP_PERM, SERVING_XFEATURE_XTILEDATA) != 0)
        return 0;
    unsigned long perm = 0;
    return syscall(SYS_arch_prctl, SERVING_ARCH_GET_XCOMP_PERM, &perm) == 0 && (perm & (1ul << SERVING_XFEATURE_XTILEDATA));
}

#ifndef SERVING_TILE_EMULATION

#include <immintrin.h>
#define TILE_CONFIG(cfg) _tile_loadconfig(cfg)
#define TILE_ZERO(t) _tile_zero(t)
#define TILE_LOAD(t, base, stride) _tile_loadd(t, base, stride)
#define TILE_STORE(t, base, stride) _tile_stored(t, base, stride)
#define TILE_DPBUSD(c, a, b) _tile_dpbusd(c, a, b)
#define TILE_DPBF16PS(c, a, b) _tile_dpbf16ps(c, a, b)
#define TILE_RELEASE() _tile_release()

#else

#include <stdatomic.h>
#include <stdio.h>

typedef struct {
    int configured; /* a palette-1 configuration is loaded */
    uint8_t rows[8];
    uint16_t colsb[8];
    uint8_t data[8][16][64];
} serving_tile_state;

static _Thread_local serving_tile_state serving_tile_emulated;
static atomic_long serving_tile_faults;
static atomic_int serving_tile_fault_described;
static char serving_tile_first_fault[160];

/* Counts a fault of `instruction`; the first one's description is kept (formatted only then, never on the way). */
static inline void serving_tile_fault(const char *instruction, const char *problem, int tile)
{
    atomic_fetch_add(&serving_tile_faults, 1);
    int expected = 0;
    if (atomic_compare_exchange_strong(&serving_tile_fault_described, &expected, 1))
        snprintf(serving_tile_first_fault, sizeof serving_tile_first_fault, "%s: %s (tile %d)", instruction, problem, tile);
}

static inline void serving_tile_config_load(const serving_tile_config *cfg)
{
    serving_tile_state *s = &serving_tile_emulated;
    memset(s, 0, sizeof *s);
    if (cfg->palette == 0)
        return; /* palette 0: tiles back to their initial, unconfigured state */
    if (cfg->palette != 1 || cfg->start_row != 0) {
        serving_tile_fault("LDTILECFG", "palette other than 1, or a nonzero start row (#GP)", -1);
        return;
    }
    for (int i = 0; i < 14; i++)
        if (cfg->reserved[i]) {
            serving_tile_fault("LDTILECFG", "reserved bytes not zero (#GP)", -1);
            return;
        }
    for (int t = 0; t < 16; t++) {
        int rows = cfg->rows[t], colsb = cfg->colsb[t];
        if (t >= 8 ? rows || colsb : rows > 16 || colsb > 64 || (rows == 0) != (colsb == 0)) {
            serving_tile_fault("LDTILECFG", "a tile's rows or bytes per row outside palette 1 (#GP)", t);
            return;
        }
        if (t < 8) {
            s->rows[t] = (uint8_t)rows;
            s->colsb[t] = (uint16_t)colsb;
        }
    }
    s->configured = 1;
}

/* 1 when tile t may be used; else counts the #UD the hardware would raise. */
static inline int serving_tile_usable(int t, const char *instruction)
{
    const serving_tile_state *s = &serving_tile_emulated;
    if (t < 0 || t > 7 || !s->configured || s->rows[t] == 0) {
        serving_tile_fault(instruction, "tile not configured (#UD)", t);
        return 0;
    }
    return 1;
}

static inline void serving_tile_zero(int t)
{
    if (serving_tile_usable(t, "TILEZERO"))
        memset(serving_tile_emulated.data[t], 0, sizeof serving_tile_emulated.data[t]);
}

static inline void serving_tile_load(int t, const void *base, long stride)
{
    if (!serving_tile_usable(t, "TILELOADD"))
        return;
    serving_tile_state *s = &serving_tile_emulated;
    memset(s->data[t], 0, sizeof s->data[t]);
    for (int r = 0; r < s->rows[t]; r++)
        memcpy(s->data[t][r], (const uint8_t *)base + r * stride, s->colsb[t]);
}

static inline void serving_tile_store(int t, void *base, long stride)
{
    if (!serving_tile_usable(t, "TILESTORED"))
        return;
    const serving_tile_state *s = &serving_tile_emulated;
    for (int r = 0; r < s->rows[t]; r++)
        memcpy((uint8_t *)base + r * stride, s->data[t][r], s->colsb[t]);
}

/* 1 when C += A·B may run (every operand configured, distinct, and of matching shapes); else counts the #UD. */
static inline int serving_tile_product_usable(int c, int a, int b, const char *instruction)
{
    if (!serving_tile_usable(c, instruction) || !serving_tile_usable(a, instruction) || !serving_tile_usable(b, instruction))
        return 0;
    const serving_tile_state *s = &serving_tile_emulated;
    if (c == a || c == b || a == b) {
        serving_tile_fault(instruction, "the same tile twice (#UD)", c);
        return 0;
    }
    /* M = rows of C and A; K = A's bytes per row / 4 = B's rows; N = C's and B's bytes per row / 4. */
    if (s->rows[c] != s->rows[a] || s->colsb[a] % 4 || s->colsb[a] / 4 != s->rows[b] || s->colsb[c] != s->colsb[b] || s->colsb[c] % 4) {
        serving_tile_fault(instruction, "operand shapes do not match (#UD)", c);
        return 0;
    }
    return 1;
}

static inline void serving_tile_dpbusd(int c, int a, int b)
{
    if (!serving_tile_product_usable(c, a, b, "TDPBUSD"))
        return;
    serving_tile_state *s = &serving_tile_emulated;
    for (int m = 0; m < s->rows[c]; m++) {
        int32_t sums[16];
        memcpy(sums, s->data[c][m], sizeof sums);
        for (int k = 0; k < s->colsb[a] / 4; k++)
            for (int n = 0; n < s->colsb[c] / 4; n++) {
                uint32_t dot = (uint32_t)sums[n];
                for (int i = 0; i < 4; i++)
                    dot += (uint32_t)((int32_t)s->data[a][m][4 * k + i] * (int32_t)(int8_t)s->data[b][k][4 * n + i]);
                sums[n] = (int32_t)dot;
            }
        memset(s->data[c][m], 0, 64);
        memcpy(s->data[c][m], sums, s->colsb[c]);
    }
}

/* A bf16 value (DAZ: a subnormal reads as a zero of its sign). */
static inline float serving_tile_bf16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    uint32_t u = (h & 0x7F80u) == 0 ? (uint32_t)(h & 0x8000u) << 16 : (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline void serving_tile_dpbf16ps(int c, int a, int b)
{
    if (!serving_tile_product_usable(c, a, b, "TDPBF16PS"))
        return;
    serving_tile_state *s = &serving_tile_emulated;
    for (int m = 0; m < s->rows[c]; m++) {
        float sums[16];
        memcpy(sums, s->data[c][m], sizeof sums);
        for (int k = 0; k < s->colsb[a] / 4; k++)
            for (int n = 0; n < s->colsb[c] / 4; n++)
                for (int i = 0; i < 2; i++) {
                    /* The product of two bf16 values is exact in float32, so this rounds once, as the hardware does. */
                    float sum = sums[n] + serving_tile_bf16(&s->data[a][m][4 * k + 2 * i]) * serving_tile_bf16(&s->data[b][k][4 * n + 2 * i]);
                    uint32_t u;
                    memcpy(&u, &sum, 4);
                    if ((u & 0x7F800000u) == 0)
                        u &= 0x80000000u; /* FTZ */
                    memcpy(&sums[n], &u, 4);
                }
        memset(s->data[c][m], 0, 64);
        memcpy(s->data[c][m], sums, s->colsb[c]);
    }
}

#define TILE_CONFIG(cfg) serving_tile_config_load(cfg)
#define TILE_ZERO(t) serving_tile_zero(t)
#define TILE_LOAD(t, base, stride) serving_tile_load(t, base, stride)
#define TILE_STORE(t, base, stride) serving_tile_store(t, base, stride)
#define TILE_DPBUSD(c, a, b) serving_tile_dpbusd(c, a, b)
#define TILE_DPBF16PS(c, a, b) serving_tile_dpbf16ps(c, a, b)
#define TILE_RELEASE() memset(&serving_tile_emulated, 0, sizeof serving_tile_emulated)

#endif
#endif
