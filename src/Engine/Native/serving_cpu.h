/* What the CPU and the OS offer the native kernels: CPUID leaf 7 feature bits and the state components enabled in XCR0. */
#ifndef SERVING_CPU_H
#define SERVING_CPU_H

#include <cpuid.h>

typedef struct {
    int avx512f, avx512bw, avx512_bf16, amx_tile, amx_bf16;
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
    cpu->amx_bf16 = (d >> 22) & 1;
    cpu->amx_tile = (d >> 24) & 1;
    __cpuid_count(7, 1, a, b, c, d);
    cpu->avx512_bf16 = (a >> 5) & 1;
    __cpuid(1, a, b, c, d);
    if (!((c >> 27) & 1)) /* OSXSAVE */
        return 0;
    unsigned hi;
    __asm__ volatile("xgetbv" : "=a"(cpu->xcr0), "=d"(hi) : "c"(0));
    return 1;
}

#endif
