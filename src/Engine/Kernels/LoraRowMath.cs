using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Serving.Engine.Kernels;

/// <summary>
/// The two halves of one row's LoRA update on raw memory, register-blocked for AVX-512. Weights are float32 or
/// bfloat16 (widened in registers: a bf16 value is the upper half of a float32); activations and accumulators are
/// float32. Separate loops per weight dtype keep the inner loops free of branches and spills.
/// <code>
/// Shrink: h[j] = A[j, :] · x                  j &lt; rank   (4 rows of A share each load of x)
/// Expand: acc[o] += Σ_j h[j] · Bt[j, o]         float32: 32 outputs kept in registers across all j, acc touched once;
///                                              bfloat16: 4 rows of Bt per pass over acc (in L1)
/// </code>
/// For bfloat16 both loops prefetch <see cref="PrefetchBytes"/> ahead in every weight stream: widening costs enough
/// instructions per byte that the hardware prefetcher alone falls behind when each row streams its own adapter (32
/// distinct adapters in a step: kernel time −15 % measured). float32 weights stream at the machine's bandwidth without it.
/// AggressiveOptimization: these are JIT-compiled fully optimised on first call (tier-0 code runs them ~40× slower).
/// </summary>
internal static unsafe class LoraRowMath
{
    private const int PrefetchBytes = 1024;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Shrink(void* a, bool bf16, int rank, int inF, float* x, float* h)
    {
        int j = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; j + 4 <= rank; j += 4)
            {
                if (bf16)
                    Shrink4Bf16((ushort*)a + (long)j * inF, inF, x, h + j);
                else
                    Shrink4F32((float*)a + (long)j * inF, inF, x, h + j);
            }
        }

        for (; j < rank; j++)
        {
            float sum = 0;
            for (int i = 0; i < inF; i++)
                sum += Weight(a, bf16, (long)j * inF + i) * x[i];
            h[j] = sum;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Expand(void* bt, bool bf16, int rank, int outF, float* h, float* acc)
    {
        int o = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            o = bf16 ? ExpandBf16((ushort*)bt, rank, outF, h, acc) : ExpandF32((float*)bt, rank, outF, h, acc);
        }

        for (; o < outF; o++)
        {
            float sum = acc[o];
            for (int j = 0; j < rank; j++)
                sum += h[j] * Weight(bt, bf16, (long)j * outF + o);
            acc[o] = sum;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ExpandF32(float* bt, int rank, int outF, float* h, float* acc)
    {
        int o = 0;
        for (; o + 32 <= outF; o += 32)
        {
            var v0 = Vector512.Load(acc + o);
            var v1 = Vector512.Load(acc + o + 16);
            float* w = bt + o;
            for (int j = 0; j < rank; j++, w += outF)
            {
                var hj = Vector512.Create(h[j]);
                v0 = Vector512.FusedMultiplyAdd(Vector512.Load(w), hj, v0);
                v1 = Vector512.FusedMultiplyAdd(Vector512.Load(w + 16), hj, v1);
            }

            v0.Store(acc + o);
            v1.Store(acc + o + 16);
        }

        return o;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ExpandBf16(ushort* bt, int rank, int outF, float* h, float* acc)
    {
        const int ahead = PrefetchBytes / sizeof(ushort);
        int end = outF / 16 * 16, j = 0;
        for (; j + 4 <= rank; j += 4)
        {
            var h0 = Vector512.Create(h[j]);
            var h1 = Vector512.Create(h[j + 1]);
            var h2 = Vector512.Create(h[j + 2]);
            var h3 = Vector512.Create(h[j + 3]);
            ushort* w0 = bt + (long)j * outF, w1 = w0 + outF, w2 = w1 + outF, w3 = w2 + outF;
            for (int o = 0; o < end; o += 16)
            {
                if ((o & 31) == 0)
                {
                    Sse.Prefetch0(w0 + o + ahead);
                    Sse.Prefetch0(w1 + o + ahead);
                    Sse.Prefetch0(w2 + o + ahead);
                    Sse.Prefetch0(w3 + o + ahead);
                }

                var v = Vector512.Load(acc + o);
                v = Vector512.FusedMultiplyAdd(Bf16.Load16((byte*)w0, o, true), h0, v);
                v = Vector512.FusedMultiplyAdd(Bf16.Load16((byte*)w1, o, true), h1, v);
                v = Vector512.FusedMultiplyAdd(Bf16.Load16((byte*)w2, o, true), h2, v);
                v = Vector512.FusedMultiplyAdd(Bf16.Load16((byte*)w3, o, true), h3, v);
                v.Store(acc + o);
            }
        }

        for (; j < rank; j++)
        {
            var hj = Vector512.Create(h[j]);
            for (int o = 0; o < end; o += 16)
                Vector512.FusedMultiplyAdd(Bf16.Load16((byte*)(bt + (long)j * outF), o, true), hj, Vector512.Load(acc + o)).Store(acc + o);
        }

        return end;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Shrink4F32(float* a, int inF, float* x, float* h)
    {
        var s0 = Vector512<float>.Zero;
        var s1 = Vector512<float>.Zero;
        var s2 = Vector512<float>.Zero;
        var s3 = Vector512<float>.Zero;
        float* a1 = a + inF, a2 = a1 + inF, a3 = a2 + inF;
        int i = 0;
        for (; i + 16 <= inF; i += 16)
        {
            var xv = Vector512.Load(x + i);
            s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), xv, s0);
            s1 = Vector512.FusedMultiplyAdd(Vector512.Load(a1 + i), xv, s1);
            s2 = Vector512.FusedMultiplyAdd(Vector512.Load(a2 + i), xv, s2);
            s3 = Vector512.FusedMultiplyAdd(Vector512.Load(a3 + i), xv, s3);
        }

        float t0 = Vector512.Sum(s0), t1 = Vector512.Sum(s1), t2 = Vector512.Sum(s2), t3 = Vector512.Sum(s3);
        for (; i < inF; i++)
        {
            t0 += a[i] * x[i];
            t1 += a1[i] * x[i];
            t2 += a2[i] * x[i];
            t3 += a3[i] * x[i];
        }

        h[0] = t0;
        h[1] = t1;
        h[2] = t2;
        h[3] = t3;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Shrink4Bf16(ushort* a, int inF, float* x, float* h)
    {
        var s0 = Vector512<float>.Zero;
        var s1 = Vector512<float>.Zero;
        var s2 = Vector512<float>.Zero;
        var s3 = Vector512<float>.Zero;
        ushort* a1 = a + inF, a2 = a1 + inF, a3 = a2 + inF;
        int i = 0;
        const int ahead = PrefetchBytes / sizeof(ushort);
        for (; i + 32 <= inF; i += 32)
        {
            Sse.Prefetch0(a + i + ahead);
            Sse.Prefetch0(a1 + i + ahead);
            Sse.Prefetch0(a2 + i + ahead);
            Sse.Prefetch0(a3 + i + ahead);
            var x0 = Vector512.Load(x + i);
            var x1 = Vector512.Load(x + i + 16);
            s0 = Fma2(a + i, x0, x1, s0);
            s1 = Fma2(a1 + i, x0, x1, s1);
            s2 = Fma2(a2 + i, x0, x1, s2);
            s3 = Fma2(a3 + i, x0, x1, s3);
        }

        float t0 = Vector512.Sum(s0), t1 = Vector512.Sum(s1), t2 = Vector512.Sum(s2), t3 = Vector512.Sum(s3);
        for (; i < inF; i++)
        {
            t0 += Weight(a, true, i) * x[i];
            t1 += Weight(a1, true, i) * x[i];
            t2 += Weight(a2, true, i) * x[i];
            t3 += Weight(a3, true, i) * x[i];
        }

        h[0] = t0;
        h[1] = t1;
        h[2] = t2;
        h[3] = t3;
    }

    /// <summary>sum + widen(w[0..16])·x0 + widen(w[16..32])·x1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Fma2(ushort* w, Vector512<float> x0, Vector512<float> x1, Vector512<float> sum)
    {
        var (lo, hi) = Vector512.Widen(Vector512.Load(w));
        sum = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(lo, 16).AsSingle(), x0, sum);
        return Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(hi, 16).AsSingle(), x1, sum);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Weight(void* w, bool bf16, long index) =>
        bf16 ? BitConverter.UInt32BitsToSingle((uint)((ushort*)w)[index] << 16) : ((float*)w)[index];
}
