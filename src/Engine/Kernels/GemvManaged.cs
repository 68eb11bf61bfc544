using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Serving.Engine.Kernels;

/// <summary>
/// The portable twin of <see cref="GemvNative.Bf16"/> / <see cref="GemvNative.F32"/> for CPUs without AVX-512: up to
/// <see cref="MaxRows"/> input rows against each weight row read from memory once (groups of four input rows in turn, the
/// row staying in L1 between them), in AVX2 fused multiply-adds, the output rows shared out over the OpenMP team so both
/// cores stream their part of the weight.
/// <code>
/// Bf16(x [M, K], W [N, K], bias [N]?, y [M, ldy]) : y[m, n] = bf16(Σ_k x[m, k]·W[n, k] + bias[n])   (float32 sums; or float32 y)
/// F32(x [M, K], W [N, K], bias [N]?, y [M, ldy])  : y[m, n] = Σ_k x[m, k]·W[n, k] + bias[n]
/// </code>
/// Each sum runs over k in 16-wide steps into two 8-lane accumulators, then their horizontal sum, then the k tail in
/// order: the same terms in the same order whatever M is, so a row's result never depends on its batch mates. Sums differ
/// from the native kernel's (another order), within float32 summation error.
/// </summary>
internal static unsafe class GemvManaged
{
    /// <summary>True where the kernel runs (AVX2 with FMA).</summary>
    public static bool IsSupported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>Most input rows one call takes.</summary>
    public const int MaxRows = 16;

    /// <summary>Input rows one pass over a weight row takes: 4 × 2 accumulators, 2 weight vectors and an input load fit AVX2's 16 registers.</summary>
    private const int GroupRows = 4;

    /// <summary>Bytes ahead of the current position the weight stream is prefetched: the hardware prefetcher alone left the read at ~80 % of the bandwidth.</summary>
    private const int PrefetchBytes = 1024;

    /// <summary>Fewest output rows a part of the team takes: below it, waking another thread costs more than it saves.</summary>
    private const int MinOutputsPerPart = 64;

    /// <inheritdoc cref="GemvNative.Bf16"/>
    public static void Bf16(nint x, int rows, long k, nint w, nint bias, long n, nint y, long ldy, bool float32Output) =>
        Run(x, rows, k, w, bias, n, y, ldy, bf16: true, float32Output);

    /// <inheritdoc cref="GemvNative.F32"/>
    public static void F32(nint x, int rows, long k, nint w, nint bias, long n, nint y, long ldy) =>
        Run(x, rows, k, w, bias, n, y, ldy, bf16: false, float32Output: true);

    private static void Run(nint x, int rows, long k, nint w, nint bias, long n, nint y, long ldy, bool bf16, bool float32Output)
    {
        if (!IsSupported)
            throw new PlatformNotSupportedException("GemvManaged needs AVX2 and FMA");
        if (rows is < 1 or > MaxRows)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, $"the GEMV kernel takes 1..{MaxRows} rows");
        // x as float32 once (bf16 widened exactly), so each weight row meets ready lanes.
        float[] inputs = System.Buffers.ArrayPool<float>.Shared.Rent(checked((int)(rows * k) + Runtime.CacheLines.Slack<float>()));
        try
        {
            fixed (float* start = inputs)
            {
                float* xs = Runtime.CacheLines.Align(start);
                for (long i = 0; i < rows * k; i++)
                    xs[i] = bf16 ? BitConverter.Int32BitsToSingle(((ushort*)x)[i] << 16) : ((float*)x)[i];
                int parts = (int)Math.Clamp(n / MinOutputsPerPart, 1, OpenMpTeam.Threads * 4);
                OpenMpTeam.For(parts, RangeParts<OutputsCall>.Even(new OutputsCall(xs, rows, k, w, bias, y, ldy, bf16, float32Output), n, parts));
            }
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(inputs);
        }
    }

    /// <summary>Output rows [from, to): every input row of xs (float32) against each weight row, plus the bias, into y.</summary>
    private readonly struct OutputsCall(float* xs, int rows, long k, nint w, nint bias, nint y, long ldy, bool bf16, bool float32Output) : IParallelRange
    {
        public void Run(long from, long to)
        {
            Span<float> sums = stackalloc float[MaxRows];
            for (long o = from; o < to; o++)
            {
                for (int g = 0; g < rows; g += GroupRows)
                {
                    float* group = xs + g * k;
                    int count = Math.Min(GroupRows, rows - g);
                    if (bf16)
                        Dots((ushort*)w + o * k, group, k, count, sums[g..]);
                    else
                        Dots((float*)w + o * k, group, k, count, sums[g..]);
                }

                float b = bias == 0 ? 0f : bf16 ? BitConverter.Int32BitsToSingle(((ushort*)bias)[o] << 16) : ((float*)bias)[o];
                for (int m = 0; m < rows; m++)
                {
                    float value = sums[m] + b;
                    if (float32Output)
                        ((float*)y)[m * ldy + o] = value;
                    else
                        ((ushort*)y)[m * ldy + o] = Kernels.Bf16.FromFloat(value);
                }
            }
        }
    }

    /// <summary>
    /// sums[m] = Σ_i w[i]·x[m, i] for m &lt; rows ≤ 4, w float32 (<typeparamref name="TWeight"/> = float) or bfloat16
    /// (ushort, widened exactly): the JIT compiles one body per weight type, with the type tests folded away.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dots<TWeight>(TWeight* w, float* x, long k, int rows, Span<float> sums) where TWeight : unmanaged
    {
        Vector256<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
        float* x1 = x + k, x2 = x + 2 * k, x3 = x + 3 * k;
        long i = 0;
        for (; i + 16 <= k; i += 16)
        {
            if (sizeof(TWeight) == 4 || (i & 31) == 0)
                Sse.Prefetch0((byte*)(w + i) + PrefetchBytes);
            var lo = Load(w + i);
            var hi = Load(w + i + 8);
            a0 = Fma.MultiplyAdd(lo, Vector256.Load(x + i), a0);
            b0 = Fma.MultiplyAdd(hi, Vector256.Load(x + i + 8), b0);
            if (rows > 1)
            {
                a1 = Fma.MultiplyAdd(lo, Vector256.Load(x1 + i), a1);
                b1 = Fma.MultiplyAdd(hi, Vector256.Load(x1 + i + 8), b1);
            }

            if (rows > 2)
            {
                a2 = Fma.MultiplyAdd(lo, Vector256.Load(x2 + i), a2);
                b2 = Fma.MultiplyAdd(hi, Vector256.Load(x2 + i + 8), b2);
            }

            if (rows > 3)
            {
                a3 = Fma.MultiplyAdd(lo, Vector256.Load(x3 + i), a3);
                b3 = Fma.MultiplyAdd(hi, Vector256.Load(x3 + i + 8), b3);
            }
        }

        Finish(a0, b0, a1, b1, a2, b2, a3, b3, rows, sums);
        for (; i < k; i++)
        {
            float wi = typeof(TWeight) == typeof(ushort) ? BitConverter.Int32BitsToSingle(*(ushort*)(w + i) << 16) : *(float*)(w + i);
            for (int m = 0; m < rows; m++)
                sums[m] += wi * x[m * k + i];
        }
    }

    /// <summary>Eight weights as float32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Load<TWeight>(TWeight* w) where TWeight : unmanaged =>
        typeof(TWeight) == typeof(ushort)
            ? Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(Sse2.LoadVector128((ushort*)w)), 16).AsSingle()
            : Vector256.Load((float*)w);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(Vector256<float> a0, Vector256<float> b0, Vector256<float> a1, Vector256<float> b1, Vector256<float> a2,
        Vector256<float> b2, Vector256<float> a3, Vector256<float> b3, int rows, Span<float> sums)
    {
        sums[0] = Vector256.Sum(a0 + b0);
        if (rows > 1)
            sums[1] = Vector256.Sum(a1 + b1);
        if (rows > 2)
            sums[2] = Vector256.Sum(a2 + b2);
        if (rows > 3)
            sums[3] = Vector256.Sum(a3 + b3);
    }
}
