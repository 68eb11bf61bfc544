using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary>
/// The two halves of one row's LoRA update on raw memory, register-blocked for AVX-512. Weights are float32 or
/// bfloat16 (widened in registers); activations and accumulators are float32.
/// <code>
/// Shrink: h[j] = A[j, :] · x                  j &lt; rank   (4 rows of A share each load of x)
/// Expand: acc[o] += Σ_j h[j] · Bt[j, o]         (32 outputs kept in registers across all j, acc touched once)
/// </code>
/// </summary>
internal static unsafe class LoraRowMath
{
    // AggressiveOptimization: kernels are JIT-compiled fully optimised on first call; tier-0 code runs them ~40× slower.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Shrink(void* a, bool bf16, int rank, int inF, float* x, float* h)
    {
        int j = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; j + 4 <= rank; j += 4)
                Shrink4(a, bf16, j, inF, x, h);
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
            for (; o + 32 <= outF; o += 32)
            {
                var v0 = Vector512.Load(acc + o);
                var v1 = Vector512.Load(acc + o + 16);
                for (int j = 0; j < rank; j++)
                {
                    var hj = Vector512.Create(h[j]);
                    var (w0, w1) = Load32(bt, bf16, (long)j * outF + o);
                    v0 = Vector512.FusedMultiplyAdd(w0, hj, v0);
                    v1 = Vector512.FusedMultiplyAdd(w1, hj, v1);
                }

                v0.Store(acc + o);
                v1.Store(acc + o + 16);
            }
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
    private static void Shrink4(void* a, bool bf16, int j, int inF, float* x, float* h)
    {
        var s0 = Vector512<float>.Zero;
        var s1 = Vector512<float>.Zero;
        var s2 = Vector512<float>.Zero;
        var s3 = Vector512<float>.Zero;
        long r0 = (long)j * inF, r1 = r0 + inF, r2 = r1 + inF, r3 = r2 + inF;
        int i = 0;
        for (; i + 32 <= inF; i += 32)
        {
            var x0 = Vector512.Load(x + i);
            var x1 = Vector512.Load(x + i + 16);
            var (a0, b0) = Load32(a, bf16, r0 + i);
            var (a1, b1) = Load32(a, bf16, r1 + i);
            var (a2, b2) = Load32(a, bf16, r2 + i);
            var (a3, b3) = Load32(a, bf16, r3 + i);
            s0 = Vector512.FusedMultiplyAdd(b0, x1, Vector512.FusedMultiplyAdd(a0, x0, s0));
            s1 = Vector512.FusedMultiplyAdd(b1, x1, Vector512.FusedMultiplyAdd(a1, x0, s1));
            s2 = Vector512.FusedMultiplyAdd(b2, x1, Vector512.FusedMultiplyAdd(a2, x0, s2));
            s3 = Vector512.FusedMultiplyAdd(b3, x1, Vector512.FusedMultiplyAdd(a3, x0, s3));
        }

        float t0 = Vector512.Sum(s0), t1 = Vector512.Sum(s1), t2 = Vector512.Sum(s2), t3 = Vector512.Sum(s3);
        for (; i < inF; i++)
        {
            t0 += Weight(a, bf16, r0 + i) * x[i];
            t1 += Weight(a, bf16, r1 + i) * x[i];
            t2 += Weight(a, bf16, r2 + i) * x[i];
            t3 += Weight(a, bf16, r3 + i) * x[i];
        }

        h[j] = t0;
        h[j + 1] = t1;
        h[j + 2] = t2;
        h[j + 3] = t3;
    }

    /// <summary>32 consecutive weights starting at element <paramref name="index"/>, as two float32 vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>) Load32(void* w, bool bf16, long index)
    {
        if (!bf16)
            return (Vector512.Load((float*)w + index), Vector512.Load((float*)w + index + 16));
        var (lo, hi) = Vector512.Widen(Vector512.Load((ushort*)w + index));
        return (Vector512.ShiftLeft(lo, 16).AsSingle(), Vector512.ShiftLeft(hi, 16).AsSingle());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Weight(void* w, bool bf16, long index) =>
        bf16 ? BitConverter.UInt32BitsToSingle((uint)((ushort*)w)[index] << 16) : ((float*)w)[index];
}
