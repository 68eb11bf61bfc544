/*
 * What the int8 projection kernels share (serving_int8.c on AVX512-VNNI, serving_int8_amx.c on AMX-INT8): the packed
 * weight layout's sizes and the epilogue that turns a row's integer sums into outputs, so that both kernels give the
 * same values for the same sums. Needs the AVX-512 target flags every kernel file here has.
 */
#ifndef SERVING_INT8_H
#define SERVING_INT8_H

#include <immintrin.h>
#include <stdint.h>
#include "serving_cpu.h"

/* Output rows per packed block (Int8Matrix.BlockRows) and inputs per group (Int8Matrix.GroupColumns). */
#define INT8_BLOCK 64
#define INT8_GROUP 4
/* Input rows whose quantized bytes stay in L2 while the weight streams (64 rows × 2,816 inputs = 180 KB). */
#define INT8_ROW_BLOCK 64

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

#endif
