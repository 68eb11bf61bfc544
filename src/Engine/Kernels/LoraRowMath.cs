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
/// For bfloat16 weights, x and acc are in pair order (ITensorElement): each 64-byte weight load becomes two float32
/// vectors with one shift and one mask.
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
        if (VectorExp.IsSupported)
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
                sum += Weight(a, bf16, (long)j * inF + i) * x[PairOrder.Index(i, inF, bf16)];
            h[j] = sum;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Expand(void* bt, bool bf16, int rank, int outF, float* h, float* acc)
    {
        int o = 0;
        if (VectorExp.IsSupported)
        {
            o = bf16 ? ExpandBf16((ushort*)bt, rank, outF, h, acc) : ExpandF32((float*)bt, rank, outF, h, acc);
        }

        for (; o < outF; o++)
        {
            int at = PairOrder.Index(o, outF, bf16);
            float sum = acc[at];
            for (int j = 0; j < rank; j++)
                sum += h[j] * Weight(bt, bf16, (long)j * outF + o);
            acc[at] = sum;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ExpandF32(float* bt, int rank, int outF, float* h, float* acc)
    {
        // 64 outputs per pass: four FMA chains, so a pass is not bound by the latency of one chain across all j.
        int o = 0;
        for (; o + 64 <= outF; o += 64)
        {
            var v0 = Vector512.Load(acc + o);
            var v1 = Vector512.Load(acc + o + 16);
            var v2 = Vector512.Load(acc + o + 32);
            var v3 = Vector512.Load(acc + o + 48);
            float* w = bt + o;
            for (int j = 0; j < rank; j++, w += outF)
            {
                var hj = Vector512.Create(h[j]);
                v0 = Vector512.FusedMultiplyAdd(Vector512.Load(w), hj, v0);
                v1 = Vector512.FusedMultiplyAdd(Vector512.Load(w + 16), hj, v1);
                v2 = Vector512.FusedMultiplyAdd(Vector512.Load(w + 32), hj, v2);
                v3 = Vector512.FusedMultiplyAdd(Vector512.Load(w + 48), hj, v3);
            }

            v0.Store(acc + o);
            v1.Store(acc + o + 16);
            v2.Store(acc + o + 32);
            v3.Store(acc + o + 48);
        }

        for (; o + 16 <= outF; o += 16)
        {
            var v = Vector512.Load(acc + o);
            float* w = bt + o;
            for (int j = 0; j < rank; j++, w += outF)
                v = Vector512.FusedMultiplyAdd(Vector512.Load(w), Vector512.Create(h[j]), v);
            v.Store(acc + o);
        }

        return o;
    }

    /// <summary>acc (pair order) += Σ_j h[j] · Bt[j, :] over whole groups of 32 outputs; returns where the tail starts.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ExpandBf16(ushort* bt, int rank, int outF, float* h, float* acc)
    {
        int end = outF / 32 * 32, j = 0;
        for (; j + 4 <= rank; j += 4)
        {
            var h0 = Vector512.Create(h[j]);
            var h1 = Vector512.Create(h[j + 1]);
            var h2 = Vector512.Create(h[j + 2]);
            var h3 = Vector512.Create(h[j + 3]);
            byte* w0 = (byte*)(bt + (long)j * outF), w1 = w0 + 2L * outF, w2 = w1 + 2L * outF, w3 = w2 + 2L * outF;
            for (nint o = 0; o < end; o += 32)
            {
                nint at = 2 * o;
                Sse.Prefetch0(w0 + at + PrefetchBytes);
                Sse.Prefetch0(w1 + at + PrefetchBytes);
                Sse.Prefetch0(w2 + at + PrefetchBytes);
                Sse.Prefetch0(w3 + at + PrefetchBytes);
                var e = Vector512.Load(acc + o);
                var d = Vector512.Load(acc + o + 16);
                e = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairFirst(w0 + at), h0, e);
                d = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairSecond(w0 + at), h0, d);
                e = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairFirst(w1 + at), h1, e);
                d = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairSecond(w1 + at), h1, d);
                e = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairFirst(w2 + at), h2, e);
                d = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairSecond(w2 + at), h2, d);
                e = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairFirst(w3 + at), h3, e);
                d = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairSecond(w3 + at), h3, d);
                e.Store(acc + o);
                d.Store(acc + o + 16);
            }
        }

        for (; j < rank; j++)
        {
            var hj = Vector512.Create(h[j]);
            byte* w = (byte*)(bt + (long)j * outF);
            for (nint o = 0; o < end; o += 32)
            {
                Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairFirst(w + 2 * o), hj, Vector512.Load(acc + o)).Store(acc + o);
                Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairSecond(w + 2 * o), hj, Vector512.Load(acc + o + 16)).Store(acc + o + 16);
            }
        }

        return end;
    }

    // The shrink loops keep two accumulators per A row (eight FMA chains): with one, each pass waited on the previous
    // pass's FMA latency. Row pointers and a native-sized index keep address arithmetic out of the loop.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Shrink4F32(float* a, int inF, float* x, float* h)
    {
        // One running sum per A row over 16-element chunks in order, as LoraRowBlockMath.Block4x4 sums: a row's h is then the
        // same bits alone or in a block of four rows with its adapter (batch invariance).
        Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
        float* a1 = a + inF, a2 = a1 + inF, a3 = a2 + inF;
        nint i = 0, end = inF - 32;
        for (; i <= end; i += 32)
        {
            var x0 = Vector512.Load(x + i);
            var x1 = Vector512.Load(x + i + 16);
            s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), x0, s0);
            s1 = Vector512.FusedMultiplyAdd(Vector512.Load(a1 + i), x0, s1);
            s2 = Vector512.FusedMultiplyAdd(Vector512.Load(a2 + i), x0, s2);
            s3 = Vector512.FusedMultiplyAdd(Vector512.Load(a3 + i), x0, s3);
            s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 16), x1, s0);
            s1 = Vector512.FusedMultiplyAdd(Vector512.Load(a1 + i + 16), x1, s1);
            s2 = Vector512.FusedMultiplyAdd(Vector512.Load(a2 + i + 16), x1, s2);
            s3 = Vector512.FusedMultiplyAdd(Vector512.Load(a3 + i + 16), x1, s3);
        }

        Finish4(a, false, inF, (int)i, x, h, Vector512.Sum(s0), Vector512.Sum(s1), Vector512.Sum(s2), Vector512.Sum(s3));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Shrink4Bf16(ushort* a, int inF, float* x, float* h)
    {
        // One running sum per A row, as Shrink4F32 (batch invariance).
        Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
        ushort* a1 = a + inF, a2 = a1 + inF, a3 = a2 + inF;
        const int ahead = PrefetchBytes / sizeof(ushort);
        nint i = 0, end = inF - 32;
        for (; i <= end; i += 32)
        {
            Sse.Prefetch0(a + i + ahead);
            Sse.Prefetch0(a1 + i + ahead);
            Sse.Prefetch0(a2 + i + ahead);
            Sse.Prefetch0(a3 + i + ahead);
            var x0 = Vector512.Load(x + i);
            var x1 = Vector512.Load(x + i + 16);
            s0 = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairFirst((byte*)(a + i)), x0, s0);
            s1 = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairFirst((byte*)(a1 + i)), x0, s1);
            s2 = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairFirst((byte*)(a2 + i)), x0, s2);
            s3 = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairFirst((byte*)(a3 + i)), x0, s3);
            s0 = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairSecond((byte*)(a + i)), x1, s0);
            s1 = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairSecond((byte*)(a1 + i)), x1, s1);
            s2 = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairSecond((byte*)(a2 + i)), x1, s2);
            s3 = Vector512.FusedMultiplyAdd(BFloat16Element.LoadPairSecond((byte*)(a3 + i)), x1, s3);
        }

        Finish4(a, true, inF, (int)i, x, h, Vector512.Sum(s0), Vector512.Sum(s1), Vector512.Sum(s2), Vector512.Sum(s3));
    }

    /// <summary>
    /// h[r] = sum_r + (A row r · x over the elements [from, inF) the vector loop left), the tail summed on its own first as
    /// LoraRowBlockMath adds it.
    /// </summary>
    private static void Finish4(void* a, bool bf16, int inF, int from, float* x, float* h, float sum0, float sum1, float sum2, float sum3)
    {
        float tail0 = 0, tail1 = 0, tail2 = 0, tail3 = 0;
        for (int i = from; i < inF; i++)
        {
            tail0 += Weight(a, bf16, i) * x[i];
            tail1 += Weight(a, bf16, (long)inF + i) * x[i];
            tail2 += Weight(a, bf16, 2L * inF + i) * x[i];
            tail3 += Weight(a, bf16, 3L * inF + i) * x[i];
        }

        h[0] = sum0 + tail0;
        h[1] = sum1 + tail1;
        h[2] = sum2 + tail2;
        h[3] = sum3 + tail3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Weight(void* w, bool bf16, long index) =>
        bf16 ? BitConverter.UInt32BitsToSingle((uint)((ushort*)w)[index] << 16) : ((float*)w)[index];
}
