using System.Runtime.InteropServices;

namespace Serving.Engine.Kernels;

/// <summary>
/// The small-batch projection kernels of <c>libserving_amx.so</c> (<c>src/Engine/Native/serving_gemv.c</c>, <c>serving_wide.c</c>): for at most
/// <see cref="MaxRows"/> input rows the weight streams from memory once for all of them (up to <see cref="GemvRows"/> rows
/// each weight row is read once; more rows go in groups of four against blocks of four weight rows held in cache), and
/// the output rows are shared out over the OpenMP team so every core streams its part of the weight.
/// <code>
/// Bf16(x [M, K], W [N, K], bias [N]?, y [M, ldy]) : y[m, n] = bf16(Σ_k x[m, k]·W[n, k] + bias[n])   (float32 sums; or float32 y)
/// F32(x [M, K], W [N, K], bias [N]?, y [M, ldy])  : y[m, n] = Σ_k x[m, k]·W[n, k] + bias[n]
/// WideBf16 / WideF32(x [M, K], W [N, K], y [N, ldy]) : y[n, m] = Σ_k x[m, k]·W[n, k]   (W·xᵀ, float32 y; M any multiple of 4)
/// </code>
/// Up to <see cref="GemvRows"/> rows each output's sum runs in the same order whatever M is; beyond, in an order set by the
/// row's place (a group of four or the remainder), never by its batch mates' values. Absent
/// library, a CPU without AVX512-BF16, or <c>SERVING_GEMV_NATIVE=0</c>: <see cref="IsAvailable"/> is false and
/// projections stay on libtorch.
/// </summary>
public static unsafe class GemvNative
{
    /// <summary>Most input rows the row-at-a-time kernel takes (serving_gemv.c's GEMV_MAX_ROWS).</summary>
    public const int GemvRows = 4;

    /// <summary>
    /// Most input rows one call takes: decode steps of up to 64 sequences. Beyond, libtorch's GEMM (a prefill's shapes) is
    /// left the work; up to here the grouped kernel ran faster than it on the AVX512-BF16 machine measured
    /// (docs/benchmarks/engine.md, 2026-12-04 session 4).
    /// </summary>
    public const int MaxRows = 64;

    /// <summary>Fewest output rows a part of the team takes: below it, waking another thread costs more than it saves.</summary>
    private const long MinOutputsPerPart = 64;

    /// <summary>Ranges per team thread: enough to rebalance around a preempted thread, few enough that each stays a long stream.</summary>
    private const int PartsPerThread = 4;

    private static readonly delegate* unmanaged[Cdecl]<ushort*, int, long, ushort*, ushort*, void*, long, int, long, long, void> Bf16Range;
    private static readonly delegate* unmanaged[Cdecl]<float*, int, long, float*, float*, float*, long, long, long, void> F32Range;
    private static readonly delegate* unmanaged[Cdecl]<byte*, long, double> ReadRange;
    private static readonly delegate* unmanaged[Cdecl]<ushort*, int, long, long, ushort*, float*, long, long, long, void> WideBf16Range;
    private static readonly delegate* unmanaged[Cdecl]<float*, int, long, long, float*, float*, long, long, long, void> WideF32Range;
    private static readonly delegate* unmanaged[Cdecl]<ushort*, int, long, ushort*, ushort*, void*, long, int, long, long, void> Bf16RowsRange;
    private static readonly delegate* unmanaged[Cdecl]<float*, int, long, float*, float*, float*, long, long, long, void> F32RowsRange;

    static GemvNative()
    {
        nint handle = ServingNativeLibrary.Load("SERVING_GEMV_NATIVE", out string? whyNot);
        if (handle == 0 || !NativeLibrary.TryGetExport(handle, "serving_gemv_init", out nint init)
            || !NativeLibrary.TryGetExport(handle, "serving_gemm_bf16_rows", out nint bf16Rows) || !NativeLibrary.TryGetExport(handle, "serving_gemm_f32_rows", out nint f32Rows))
        {
            Status = whyNot ?? $"{ServingNativeLibrary.FileName} has no GEMV kernel (built before it was added)";
            return;
        }
        if (((delegate* unmanaged[Cdecl]<int>)init)() != 1)
        {
            Status = "the CPU has no AVX512-BF16";
            return;
        }
        Bf16Range = (delegate* unmanaged[Cdecl]<ushort*, int, long, ushort*, ushort*, void*, long, int, long, long, void>)NativeLibrary.GetExport(handle, "serving_gemv_bf16");
        F32Range = (delegate* unmanaged[Cdecl]<float*, int, long, float*, float*, float*, long, long, long, void>)NativeLibrary.GetExport(handle, "serving_gemv_f32");
        ReadRange = (delegate* unmanaged[Cdecl]<byte*, long, double>)NativeLibrary.GetExport(handle, "serving_read_bytes");
        WideBf16Range = (delegate* unmanaged[Cdecl]<ushort*, int, long, long, ushort*, float*, long, long, long, void>)NativeLibrary.GetExport(handle, "serving_wide_bf16");
        WideF32Range = (delegate* unmanaged[Cdecl]<float*, int, long, long, float*, float*, long, long, long, void>)NativeLibrary.GetExport(handle, "serving_wide_f32");
        Bf16RowsRange = (delegate* unmanaged[Cdecl]<ushort*, int, long, ushort*, ushort*, void*, long, int, long, long, void>)bf16Rows;
        F32RowsRange = (delegate* unmanaged[Cdecl]<float*, int, long, float*, float*, float*, long, long, long, void>)f32Rows;
        IsAvailable = true;
        Status = "in use";
    }

    /// <summary>True when small-batch projections can run on the native kernels in this process.</summary>
    public static bool IsAvailable { get; }

    /// <summary>Why <see cref="IsAvailable"/> is what it is, for the start-up log and the benchmarks.</summary>
    public static string Status { get; }

    /// <summary>bfloat16 <paramref name="x"/> <c>[rows, k]</c> · <paramref name="w"/>ᵀ (<c>[n, k]</c>) → <paramref name="y"/> <c>[rows, ldy]</c>, bf16 or float32.</summary>
    public static void Bf16(nint x, int rows, long k, nint w, nint bias, long n, nint y, long ldy, bool float32Output)
    {
        Check(rows);
        ForParts(n, new Bf16Call(rows <= GemvRows ? Bf16Range : Bf16RowsRange, (ushort*)x, rows, k, (ushort*)w, (ushort*)bias, (void*)y, ldy,
            float32Output ? 1 : 0));
    }

    /// <summary>float32 <paramref name="x"/> <c>[rows, k]</c> · <paramref name="w"/>ᵀ (<c>[n, k]</c>) → <paramref name="y"/> <c>[rows, ldy]</c>.</summary>
    public static void F32(nint x, int rows, long k, nint w, nint bias, long n, nint y, long ldy)
    {
        Check(rows);
        ForParts(n, new F32Call(rows <= GemvRows ? F32Range : F32RowsRange, (float*)x, rows, k, (float*)w, (float*)bias, (float*)y, ldy));
    }

    /// <summary>Rows of x a <see cref="WideBf16"/> or <see cref="WideF32"/> call takes must be a multiple of this (pad with zero rows).</summary>
    public const int WideRowMultiple = 4;

    /// <summary>A row stride (elements) for x of <paramref name="k"/> elements of <paramref name="elementSize"/> bytes that spreads its rows over L1's sets.</summary>
    public static long WideRowStride(long k, int elementSize) => k + 64 / elementSize;

    /// <summary>
    /// bfloat16 <paramref name="x"/> <c>[rows, k]</c> (row stride <paramref name="ldx"/>) · <paramref name="w"/>ᵀ
    /// (<c>[n, k]</c>), written as W·xᵀ into float32 <paramref name="y"/> <c>[n, ldy ≥ rows]</c>, for skinny products (a LoRA A against a base
    /// weight): any multiple of <see cref="WideRowMultiple"/> rows, the weight streamed from memory once. Give x a row
    /// stride that is not a multiple of 4 KiB (<see cref="WideRowStride"/>), or its rows contend for the same L1 sets.
    /// </summary>
    public static void WideBf16(nint x, int rows, long ldx, long k, nint w, long n, nint y, long ldy)
    {
        CheckWide(rows);
        ForParts(n, new WideCall((delegate* unmanaged[Cdecl]<void*, int, long, long, void*, float*, long, long, long, void>)WideBf16Range, (void*)x, rows, ldx, k, (void*)w,
            (float*)y, ldy));
    }

    /// <summary>float32 <paramref name="x"/> <c>[rows, k]</c> and <paramref name="w"/> <c>[n, k]</c> → W·xᵀ in <paramref name="y"/> <c>[n, ldy]</c>, as <see cref="WideBf16"/>.</summary>
    public static void WideF32(nint x, int rows, long ldx, long k, nint w, long n, nint y, long ldy)
    {
        CheckWide(rows);
        ForParts(n, new WideCall((delegate* unmanaged[Cdecl]<void*, int, long, long, void*, float*, long, long, long, void>)WideF32Range, (void*)x, rows, ldx, k, (void*)w,
            (float*)y, ldy));
    }

    private static void CheckWide(int rows)
    {
        if (!IsAvailable)
            throw new InvalidOperationException($"the native GEMV kernel is not available: {Status}");
        if (rows < WideRowMultiple || rows % WideRowMultiple != 0)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, $"the wide kernel takes a positive multiple of {WideRowMultiple} rows");
    }

    /// <summary>
    /// Reads <paramref name="bytes"/> (a multiple of 256) from <paramref name="data"/> on every thread of the team, each its
    /// share, as a projection streams its weight: the read-bandwidth probe the benchmarks compare a decode step with.
    /// </summary>
    public static double Read(nint data, long bytes)
    {
        if (!IsAvailable)
            throw new InvalidOperationException($"the native read probe is not available: {Status}");
        long blocks = bytes / 256;
        double sum = 0;
        ForParts(blocks, new ReadCall((byte*)data, &sum), minPerPart: 1024);
        return sum;
    }

    private static void Check(int rows)
    {
        if (!IsAvailable)
            throw new InvalidOperationException($"the native GEMV kernel is not available: {Status}");
        if (rows is < 1 or > MaxRows)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, $"the small-batch kernel takes 1..{MaxRows} rows");
    }

    /// <summary>
    /// [0, n) in contiguous ranges (multiples of 4, the kernel's block of output rows), <see cref="PartsPerThread"/> per
    /// thread of the team, which the threads claim in turn: a thread the OS takes away for a while (on a small machine the
    /// server's request threads run beside the step) leaves its remaining ranges to the others instead of making the
    /// whole step wait for it.
    /// </summary>
    private static void ForParts<TCall>(long n, TCall call, long minPerPart = MinOutputsPerPart) where TCall : struct, IParallelRange
    {
        int threads = OpenMpTeam.Threads;
        int parts = (int)Math.Clamp(n / minPerPart, 1, threads == 1 ? 1 : threads * PartsPerThread);
        OpenMpTeam.For(parts, RangeParts<TCall>.Even(call, n, parts, multiple: 4));
    }

    private readonly struct Bf16Call(delegate* unmanaged[Cdecl]<ushort*, int, long, ushort*, ushort*, void*, long, int, long, long, void> range,
        ushort* x, int rows, long k, ushort* w, ushort* bias, void* y, long ldy, int float32Output) : IParallelRange
    {
        public void Run(long from, long to) => range(x, rows, k, w, bias, y, ldy, float32Output, from, to);
    }

    private readonly struct F32Call(delegate* unmanaged[Cdecl]<float*, int, long, float*, float*, float*, long, long, long, void> range,
        float* x, int rows, long k, float* w, float* bias, float* y, long ldy) : IParallelRange
    {
        public void Run(long from, long to) => range(x, rows, k, w, bias, y, ldy, from, to);
    }

    private readonly struct WideCall(delegate* unmanaged[Cdecl]<void*, int, long, long, void*, float*, long, long, long, void> range,
        void* x, int rows, long ldx, long k, void* w, float* y, long ldy) : IParallelRange
    {
        public void Run(long from, long to) => range(x, rows, ldx, k, w, y, ldy, from, to);
    }

    /// <summary>Reads blocks of 256 bytes and adds what the read returns (so that it cannot be left out) to *sum.</summary>
    private readonly struct ReadCall(byte* data, double* sum) : IParallelRange
    {
        public void Run(long from, long to)
        {
            double part = ReadRange(data + from * 256, (to - from) * 256);
            for (double seen = *sum; ;)
            {
                double found = Interlocked.CompareExchange(ref *sum, seen + part, seen);
                if (found.Equals(seen))
                    return;
                seen = found;
            }
        }
    }
}
