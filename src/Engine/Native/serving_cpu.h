/* What the CPU and the OS offer the native kernels: CPUID leaf 7 feature bits and the state components enabled in XCR0. */
#ifndef SERVING_CPU_H
#define SERVING_CPU_H

#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int avx512f, avx512bw, avx512_bf16, avx512_vnni, amx_tile, amx_bf16, amx_int8;
    unsigned xcr0; /* low half of XCR0: which register states the OS saves */
} serving_cpu;

/* Fills *cpu; 0 when the CPU has no leaf 7 or the OS has not enabled XSAVE (then no wide state may be used). */
static inline int serving_cpu_read(serving_cpu *cpu)
{
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, 0) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    cpu->avx512f = (b >> 16) & 1;
    cpu->avx512bw = (b >> 30) & 1;
    cpu->avx512_vnni = (c >> 11) & 1;
    cpu->amx_bf16 = (d >> 22) & 1;
    cpu->amx_tile = (d >> 24) & 1;
    cpu->amx_int8 = (d >> 25) & 1;
    __cpuid_count(7, 1, a, b, c, d);
    cpu->avx512_bf16 = (a >> 5) & 1;
    __cpuid(1, a, b, c, d);
    if (!((c >> 27) & 1)) /* OSXSAVE */
        return 0;
    unsigned hi;
    __asm__ volatile("xgetbv" : "=a"(cpu->xcr0), "=d"(hi) : "c"(0));
    return 1;
}

/* 1 when the CPU has AVX512-F/BW and AVX512-BF16 and the OS saves SSE, AVX and the three AVX-512 state components. */
static inline int serving_cpu_has_avx512_bf16(void)
{
    serving_cpu cpu;
    if (!serving_cpu_read(&cpu) || !cpu.avx512f || !cpu.avx512bw || !cpu.avx512_bf16)
        return 0;
    return (cpu.xcr0 & 0xE6) == 0xE6;
}

/* 1 when the CPU has AVX512-F/BW and AVX512-VNNI and the OS saves the AVX-512 state. */
static inline int serving_cpu_has_avx512_vnni(void)
{
    serving_cpu cpu;
    if (!serving_cpu_read(&cpu) || !cpu.avx512f || !cpu.avx512bw || !cpu.avx512_vnni)
        return 0;
    return (cpu.xcr0 & 0xE6) == 0xE6;
}

/* float → bfloat16, rounding to nearest even; NaN stays a (quiet) NaN. */
static inline uint16_t serving_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/*
 * Sixteen floats → bfloat16 in the low half of each 32-bit lane, as serving_to_bf16 rounds (VCVTNEPS2BF16 would flush
 * subnormals to zero). Needs the file's AVX-512 target flags, as every kernel file here has.
 */
static inline __m512i serving_to_bf16_x16(__m512 v)
{
    const __m512i u = _mm512_castps_si512(v);
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))), 16);
    return _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
}

/*
 * The sum of v's sixteen lanes, associated as serving_wide.c's wide_sums16 associates each of its sums: within each
 * 128-bit quarter (l0 + l2) + (l1 + l3), then (q0 + q1) + (q2 + q3). Every projection kernel reduces with this order and
 * accumulates its chunks in one running sum, so an output's value does not depend on which kernel, or how many rows, a
 * call had: a sequence decodes the same alone, in a batch, or as a speculative step's rows (batch invariance).
 */
static inline float serving_sum16(__m512 v)
{
    const __m512 pairs = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));            /* lanes 0, 1: l0 + l2, l1 + l3 */
    const __m512 quarters = _mm512_add_ps(pairs, _mm512_permute_ps(pairs, 0xB1)); /* lane 0 of each quarter: its sum */
    const __m512 halves = _mm512_add_ps(quarters, _mm512_shuffle_f32x4(quarters, quarters, 0xB1));
    return _mm512_cvtss_f32(_mm512_add_ps(halves, _mm512_shuffle_f32x4(halves, halves, 0x4E)));
}

/* bfloat16 → float (exact). */
static inline float serving_from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Stores value at y[index], float32 when out_f32, else bfloat16 (nearest even). */
static inline void serving_store(void *y, int out_f32, long index, float value)
{
    if (out_f32)
        ((float *)y)[index] = value;
    else
        ((uint16_t *)y)[index] = serving_to_bf16(value);
}

#endif
