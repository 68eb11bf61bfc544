using System.Runtime.InteropServices;
using Serving.Engine.Quantization;

namespace Serving.Engine.Kernels;

/// <summary>
/// The int8 projection kernel of <c>libserving_amx.so</c> (<c>src/Engine/Native/serving_int8.c</c>) for a few input rows
/// (decode steps), on AVX512-VNNI:
/// <code>
/// Gemv(xu [M, K] = xq + 128, xscale [M], W: Int8Matrix [N, K], bias [N]?, y [M, ldy]) :
///     y[m, n] = xscale[m] · W.Scales[n] · (Σ_k xu[m, k]·W.Values[n, k] − 128·W.RowSums[n]) + bias[n]
/// </code>
/// Integer sums are exact, so a row's result never depends on its batch mates. Absent library, a CPU without
/// AVX512-VNNI, or <c>SERVING_INT8_NATIVE=0</c>: <see cref="IsAvailable"/> is false.
/// </summary>
public static unsafe class Int8Native
{
    /// <summary>Most input rows one call takes (serving_int8.c's INT8_MAX_ROWS).</summary>
    public const int MaxRows = 4;

    /// <summary>Longest input dimension whose integer sums cannot overflow 32 bits (K·255·127 &lt; 2³¹).</summary>
    public const int MaxColumns = 65_000;

    private const long MinOutputsPerPart = 64;

    private static readonly delegate* unmanaged[Cdecl]<byte*, float*, int, long, sbyte*, float*, int*, float*, float*, long, long, long, void> Range;

    static Int8Native()
    {
        nint handle = ServingNativeLibrary.Load("SERVING_INT8_NATIVE", out string? whyNot);
        if (handle == 0 || !NativeLibrary.TryGetExport(handle, "serving_int8_init", out nint init))
        {
            Status = whyNot ?? $"{ServingNativeLibrary.FileName} has no int8 kernel (built before it was added)";
            return;
        }
        if (((delegate* unmanaged[Cdecl]<int>)init)() != 1)
        {
            Status = "the CPU has no AVX512-VNNI";
            return;
        }
        Range = (delegate* unmanaged[Cdecl]<byte*, float*, int, long, sbyte*, float*, int*, float*, float*, long, long, long, void>)NativeLibrary.GetExport(handle, "serving_gemv_s8");
        IsAvailable = true;
        Status = "in use";
    }

    /// <summary>True when int8 projections can run on the native kernel in this process.</summary>
    public static bool IsAvailable { get; }

    /// <summary>Why <see cref="IsAvailable"/> is what it is, for the start-up log and the benchmarks.</summary>
    public static string Status { get; }

    /// <summary>
    /// <paramref name="rows"/> input rows (quantized by <see cref="Int8Quantizer.QuantizeInputRows"/>) times
    /// <paramref name="w"/>ᵀ into <paramref name="y"/> <c>[rows, ldy]</c>.
    /// </summary>
    public static void Gemv(ReadOnlySpan<byte> offsetInput, ReadOnlySpan<float> inputScales, int rows, Int8Matrix w, ReadOnlySpan<float> bias, Span<float> y, int ldy)
    {
        if (!IsAvailable)
            throw new InvalidOperationException($"the native int8 kernel is not available: {Status}");
        if (rows is < 1 or > MaxRows)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, $"the int8 kernel takes 1..{MaxRows} rows");
        if (w.Columns > MaxColumns)
            throw new ArgumentException($"an input dimension of {w.Columns} exceeds {MaxColumns}, where 32-bit sums could overflow", nameof(w));
        if (offsetInput.Length < rows * w.Columns || inputScales.Length < rows || y.Length < (rows - 1) * ldy + w.Rows || ldy < w.Rows
            || (!bias.IsEmpty && bias.Length != w.Rows))
            throw new ArgumentException("buffer sizes do not match the matrix and the row count");
        fixed (byte* x = offsetInput)
        fixed (float* xs = inputScales)
        fixed (sbyte* q = w.Values)
        fixed (float* ws = w.Scales)
        fixed (int* sums = w.RowSums)
        fixed (float* b = bias)
        fixed (float* output = y)
        {
            nint px = (nint)x, pxs = (nint)xs, pq = (nint)q, pws = (nint)ws, psums = (nint)sums, pb = bias.IsEmpty ? 0 : (nint)b, py = (nint)output;
            long k = w.Columns, n = w.Rows;
            int parts = (int)Math.Clamp(n / MinOutputsPerPart, 1, OpenMpTeam.Threads == 1 ? 1 : OpenMpTeam.Threads * 4);
            long share = (n + parts - 1) / parts;
            OpenMpTeam.For(parts, p => Range((byte*)px, (float*)pxs, rows, k, (sbyte*)pq, (float*)pws, (int*)psums, (float*)pb, (float*)py, ldy,
                Math.Min(n, p * share), Math.Min(n, (p + 1) * share)));
        }
    }
}
