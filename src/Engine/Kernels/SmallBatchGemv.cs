namespace Serving.Engine.Kernels;

/// <summary>
/// The small-batch projection kernel a process uses, chosen once: <see cref="GemvNative"/> (AVX512-BF16) where it is
/// available, else its AVX2 twin <see cref="GemvManaged"/>, else none (projections stay on libtorch). Both compute
/// <code>
/// Bf16(x [M, K], W [N, K], bias [N]?, y [M, ldy]) : y[m, n] = bf16(Σ_k x[m, k]·W[n, k] + bias[n])   (float32 sums; or float32 y)
/// F32(x [M, K], W [N, K], bias [N]?, y [M, ldy])  : y[m, n] = Σ_k x[m, k]·W[n, k] + bias[n]
/// </code>
/// for 1 ≤ M ≤ <see cref="MaxRows"/>, each weight row read from memory once, a row's result independent of its batch mates' values.
/// </summary>
public static class SmallBatchGemv
{
    /// <summary>
    /// Most input rows one call takes: the native kernel's 64 (groups of four rows against blocks of four weight rows held
    /// in cache), or the managed kernel's sixteen (it keeps each weight row in L1 across groups of four; on the AVX2 machine
    /// measured, libtorch's float32 GEMM took 7.8× the weights' read time for eight rows).
    /// </summary>
    public static int MaxRows { get; } = GemvNative.IsAvailable ? GemvNative.MaxRows : GemvManaged.IsSupported ? GemvManaged.MaxRows : 0;

    /// <summary>True when small-batch projections can run on one of the kernels in this process.</summary>
    public static bool IsAvailable { get; } = GemvNative.IsAvailable || GemvManaged.IsSupported;

    /// <summary>Which kernel runs, and why, for the start-up log and the benchmarks.</summary>
    public static string Status { get; } = GemvNative.IsAvailable ? "native (AVX512-BF16)"
        : GemvManaged.IsSupported ? $"managed AVX2 (native: {GemvNative.Status})"
        : $"none (native: {GemvNative.Status}; no AVX2 and FMA)";

    /// <inheritdoc cref="GemvNative.Bf16"/>
    public static void Bf16(nint x, int rows, long k, nint w, nint bias, long n, nint y, long ldy, bool float32Output)
    {
        if (GemvNative.IsAvailable)
            GemvNative.Bf16(x, rows, k, w, bias, n, y, ldy, float32Output);
        else
            GemvManaged.Bf16(x, rows, k, w, bias, n, y, ldy, float32Output);
    }

    /// <inheritdoc cref="GemvNative.F32"/>
    public static void F32(nint x, int rows, long k, nint w, nint bias, long n, nint y, long ldy)
    {
        if (GemvNative.IsAvailable)
            GemvNative.F32(x, rows, k, w, bias, n, y, ldy);
        else
            GemvManaged.F32(x, rows, k, w, bias, n, y, ldy);
    }
}
