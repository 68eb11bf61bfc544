using System.Buffers;
using Serving.Engine.Kernels;
using Serving.Engine.Runtime;

namespace Serving.Engine.Quantization;

/// <summary>
/// An int8 projection on CPU memory, chosen once per process: <see cref="Int8Native"/> (AVX512-VNNI, AMX-INT8 for calls of
/// many rows where <see cref="Int8AmxNative"/> runs) where it runs, else
/// <see cref="Int8ManagedKernel"/>, which computes the same values.
/// <code>Apply(W: Int8Matrix [N, K], x [rows, K], bias [N]?) → y [rows, ldy] = quantize(x) · Wᵀ + bias</code>
/// x, bias and y are bfloat16 or float32 together (y float32 with float32Output). The input rows' quantized bytes go to a
/// pooled buffer, so a step allocates nothing.
/// </summary>
public static unsafe class Int8Linear
{
    /// <summary>Which kernel runs int8 projections in this process, for the load log and the benchmarks.</summary>
    public static string Kernel => !Int8Native.IsAvailable ? $"portable (native kernel: {Int8Native.Status})"
        : Int8AmxNative.IsAvailable ? $"AMX-INT8 from {Int8AmxNative.MinRows} rows, else AVX512-VNNI" : $"AVX512-VNNI (AMX-INT8: {Int8AmxNative.Status})";

    /// <summary>Runs the projection; the caller has checked that the pointers hold the shapes above.</summary>
    /// <param name="w">The quantized weight.</param>
    /// <param name="x">Input rows <c>[rows, K]</c>.</param>
    /// <param name="bf16">x, bias and y are bfloat16 (else float32).</param>
    /// <param name="rows">Input rows.</param>
    /// <param name="bias">Added to every row, or null.</param>
    /// <param name="y">Output rows <c>[rows, ldy]</c>.</param>
    /// <param name="ldy">Elements from one output row to the next (≥ N).</param>
    /// <param name="float32Output">y is float32 even for bf16 inputs (logits).</param>
    public static void Apply(Int8Matrix w, void* x, bool bf16, int rows, void* bias, void* y, long ldy, bool float32Output)
    {
        if (w.Columns > Int8Native.MaxColumns)
            throw new ArgumentException($"an input dimension of {w.Columns} exceeds {Int8Native.MaxColumns}, where 32-bit sums could overflow", nameof(w));
        long count = (long)rows * w.Columns;
        if (count > Array.MaxLength - CacheLines.Bytes)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, "too many input rows for one int8 projection");
        // The quantized rows start on a cache line (CacheLines): the kernels load them a line at a time for every weight row.
        byte[] bytes = ArrayPool<byte>.Shared.Rent((int)count + CacheLines.Slack<byte>());
        float[] scales = ArrayPool<float>.Shared.Rent(rows);
        try
        {
            fixed (byte* start = bytes)
            fixed (float* xs = scales)
            {
                byte* xu = CacheLines.Align(start);
                if (Int8Native.IsAvailable)
                {
                    Int8Native.QuantizeRows(x, bf16, rows, w.Columns, xu, xs);
                    Int8Native.Gemm(xu, xs, rows, w, bias, bf16, y, ldy, float32Output);
                }
                else
                {
                    Int8ManagedKernel.QuantizeRows(x, bf16, rows, w.Columns, xu, xs);
                    Int8ManagedKernel.Gemm(xu, xs, rows, w, bias, bf16, y, ldy, float32Output);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
            ArrayPool<float>.Shared.Return(scales);
        }
    }

    /// <summary>Checks span arguments of the float32 kernel entry points against the matrix and the row count.</summary>
    internal static void CheckSpans(ReadOnlySpan<byte> offsetInput, ReadOnlySpan<float> inputScales, int rows, Int8Matrix w, ReadOnlySpan<float> bias, Span<float> y, int ldy)
    {
        if (rows < 1)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, "at least one input row");
        if (w.Columns > Int8Native.MaxColumns)
            throw new ArgumentException($"an input dimension of {w.Columns} exceeds {Int8Native.MaxColumns}, where 32-bit sums could overflow", nameof(w));
        if (offsetInput.Length < (long)rows * w.Columns || inputScales.Length < rows || y.Length < (long)(rows - 1) * ldy + w.Rows || ldy < w.Rows
            || (!bias.IsEmpty && bias.Length != w.Rows))
            throw new ArgumentException("buffer sizes do not match the matrix and the row count");
    }
}
