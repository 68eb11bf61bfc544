using System.Runtime.InteropServices;
using Serving.Engine.Quantization;

namespace Serving.Engine.Kernels;

/// <summary>
/// The int8 projection kernels of <c>libserving_amx.so</c> (<c>src/Engine/Native/serving_int8.c</c>) on AVX512-VNNI:
/// <code>
/// QuantizeRows(x [M, K] bf16|f32) → xu [M, K] = round(x / xscale) + 128,  xscale [M] = max_k |x[m, k]| / 127
/// Gemm(xu, xscale, W: Int8Matrix [N, K], bias [N]?, y [M, ldy]) :
///     y[m, n] = round( xscale[m] · W.Scales[n] · (Σ_k xu[m, k]·W.Value(n, k) − 128·W.RowSums[n]) + bias[n] )
/// </code>
/// round: to bf16 for bf16 outputs, none for float32. Integer sums are exact, so a row's result never depends on its batch
/// mates. Absent library, a CPU without AVX512-VNNI, or <c>SERVING_INT8_NATIVE=0</c>: <see cref="IsAvailable"/> is false and
/// <see cref="Int8ManagedKernel"/> computes the same sums. Calls that <see cref="Int8AmxNative.Takes"/> run on its AMX twin,
/// which gives the same values.
/// </summary>
public static unsafe class Int8Native
{
    /// <summary>Longest input dimension whose integer sums cannot overflow 32 bits (K·255·127 &lt; 2³¹).</summary>
    public const int MaxColumns = 65_000;

    private static readonly delegate* unmanaged[Cdecl]<void*, int, long, byte*, float*, long, long, void> QuantizeRange;
    private static readonly delegate* unmanaged[Cdecl]<byte*, float*, long, long, sbyte*, float*, int*, void*, int, void*, long, int, long, long, long, void> GemmRange;

    static Int8Native()
    {
        nint handle = ServingNativeLibrary.Load("SERVING_INT8_NATIVE", out string? whyNot);
        if (handle == 0 || !NativeLibrary.TryGetExport(handle, "serving_int8_init", out nint init)
            || !NativeLibrary.TryGetExport(handle, "serving_gemm_s8_packed", out nint gemm) || !NativeLibrary.TryGetExport(handle, "serving_quantize_rows_s8", out nint quantize))
        {
            Status = whyNot ?? $"{ServingNativeLibrary.FileName} has no int8 kernel (built before it was added)";
            return;
        }
        if (((delegate* unmanaged[Cdecl]<int>)init)() != 1)
        {
            Status = "the CPU has no AVX512-VNNI";
            return;
        }
        QuantizeRange = (delegate* unmanaged[Cdecl]<void*, int, long, byte*, float*, long, long, void>)quantize;
        GemmRange = (delegate* unmanaged[Cdecl]<byte*, float*, long, long, sbyte*, float*, int*, void*, int, void*, long, int, long, long, long, void>)gemm;
        IsAvailable = true;
        Status = "in use";
    }

    /// <summary>Parts of a GEMM per team thread at most (<see cref="Gemm(byte*, float*, int, Int8Matrix, void*, bool, void*, long, bool)"/>).</summary>
    private const int PartsPerThread = 4;

    /// <summary>
    /// Fewest weight bytes a part of a GEMM takes while the team has a part per thread: why, each part's stream starts cold,
    /// and the step's 1–3 MB projections alone streamed 7–12 % faster in one part a thread than in four (docs/benchmarks/int8.md).
    /// </summary>
    private const long MinPartBytes = 1 << 20;

    /// <summary>Fewest input elements quantized on the OpenMP team rather than on the calling thread.</summary>
    private const long ParallelQuantizeElements = 65_536;

    /// <summary>The same inside a held region (<see cref="OpenMpTeam.CallsAreCheap"/>).</summary>
    private const long HeldParallelQuantizeElements = 4_096;

    /// <summary>True when int8 projections can run on the native kernels in this process.</summary>
    public static bool IsAvailable { get; }

    /// <summary>Why <see cref="IsAvailable"/> is what it is, for the start-up log and the benchmarks.</summary>
    public static string Status { get; }

    /// <summary><paramref name="rows"/> rows of <paramref name="x"/> <c>[rows, k]</c> (bf16 or float32) into offset bytes and scales.</summary>
    public static void QuantizeRows(void* x, bool bf16, int rows, long k, byte* offsetValues, float* scales)
    {
        Require();
        int bf = bf16 ? 1 : 0;
        // A decode step's rows (8 × 2,816 inputs: a few microseconds) cost less on this thread than a region's hand-off,
        // but more than a held region's post.
        int parts = rows * k < (OpenMpTeam.CallsAreCheap ? HeldParallelQuantizeElements : ParallelQuantizeElements) ? 1 : Math.Min(rows, OpenMpTeam.Threads);
        if (parts == 1)
            QuantizeRange(x, bf, k, offsetValues, scales, 0, rows);
        else
            OpenMpTeam.For(parts, RangeParts<QuantizeCall>.Even(new QuantizeCall(x, bf, k, offsetValues, scales), rows, parts));
    }

    private readonly struct QuantizeCall(void* x, int bf16, long k, byte* offsetValues, float* scales) : IParallelRange
    {
        public void Run(long from, long to) => QuantizeRange(x, bf16, k, offsetValues, scales, from, to);
    }

    private readonly struct GemmCall(
        delegate* unmanaged[Cdecl]<byte*, float*, long, long, sbyte*, float*, int*, void*, int, void*, long, int, long, long, long, void> kernel,
        byte* x, float* xs, int rows, long k, sbyte* q, float* ws, int* sums, void* bias, int bf16, void* y, long ldy, int f32, long n) : IParallelRange
    {
        public void Run(long from, long to) => kernel(x, xs, rows, k, q, ws, sums, bias, bf16, y, ldy, f32, n, from, to);
    }

    /// <summary>
    /// Quantized rows times <paramref name="w"/>ᵀ into <paramref name="y"/> <c>[rows, ldy]</c>: bias and y in bfloat16 with
    /// <paramref name="bf16"/> (y in float32 with <paramref name="float32Output"/>), else float32. Inputs are checked by the caller.
    /// </summary>
    public static void Gemm(byte* offsetInput, float* inputScales, int rows, Int8Matrix w, void* bias, bool bf16, void* y, long ldy, bool float32Output)
    {
        Require();
        fixed (sbyte* q = w.Packed)
        fixed (float* ws = w.Scales)
        fixed (int* sums = w.RowSums)
        {
            long k = w.Columns, n = w.Rows;
            int bf = bf16 ? 1 : 0, f32 = float32Output || !bf16 ? 1 : 0;
            // Parts are whole packed blocks of Int8Matrix.BlockRows outputs, up to PartsPerThread per thread so that a late
            // thread's share is taken by the others, but none under MinPartBytes: each part's stream starts cold.
            long blocks = (n + Int8Matrix.BlockRows - 1) / Int8Matrix.BlockRows;
            int threads = OpenMpTeam.Threads;
            int perThread = threads == 1 ? 1 : (int)Math.Clamp(w.Bytes / (threads * MinPartBytes), 1, PartsPerThread);
            int parts = (int)Math.Clamp(blocks, 1, threads * perThread);
            var kernel = Int8AmxNative.Takes(rows, k) ? Int8AmxNative.GemmRange : GemmRange;
            if (parts == 1)
                kernel(offsetInput, inputScales, rows, k, q, ws, sums, bias, bf, y, ldy, f32, n, 0, blocks);
            else
                OpenMpTeam.For(parts, RangeParts<GemmCall>.Even(new GemmCall(kernel, offsetInput, inputScales, rows, k, q, ws, sums, bias, bf, y, ldy, f32, n), blocks, parts));
        }
    }

    /// <summary>
    /// float32 rows already quantized by <see cref="Int8Quantizer.QuantizeInputRows"/> times <paramref name="w"/>ᵀ into
    /// <paramref name="y"/> <c>[rows, ldy]</c> (float32 bias and output): the kernel on checked spans, for tests and benchmarks.
    /// </summary>
    public static void Gemm(ReadOnlySpan<byte> offsetInput, ReadOnlySpan<float> inputScales, int rows, Int8Matrix w, ReadOnlySpan<float> bias, Span<float> y, int ldy)
    {
        Int8Linear.CheckSpans(offsetInput, inputScales, rows, w, bias, y, ldy);
        fixed (byte* x = offsetInput)
        fixed (float* xs = inputScales)
        fixed (float* b = bias)
        fixed (float* output = y)
            Gemm(x, xs, rows, w, bias.IsEmpty ? null : b, bf16: false, output, ldy, float32Output: true);
    }

    private static void Require()
    {
        if (!IsAvailable)
            throw new InvalidOperationException($"the native int8 kernel is not available: {Status}");
    }
}
