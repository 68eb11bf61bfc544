using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace Serving.Engine.Quantization;

/// <summary>
/// Symmetric int8 quantization per row: <c>scale = max_k |v[k]| / 127</c>, <c>q[k] = round(v[k] / scale)</c> (to nearest,
/// ties to even), so <c>|v[k] − scale·q[k]| ≤ scale / 2</c>. A row of zeros gets scale 0 and zeros. Used for base
/// weights at load (per output channel) and for a decode step's input rows at call time (per row, offset by 128 into
/// unsigned bytes for VPDPBUSD).
/// </summary>
public static class Int8Quantizer
{
    /// <summary>The largest magnitude a quantized value takes (−128 is never used, so the range is symmetric).</summary>
    public const int Limit = 127;

    /// <summary>Quantizes <paramref name="weights"/> <c>[rows, columns]</c> (row-major) per row.</summary>
    public static Int8Matrix QuantizeRows(ReadOnlySpan<float> weights, int rows, int columns)
    {
        if (weights.Length != (long)rows * columns)
            throw new ArgumentException($"expected {rows}×{columns} values, got {weights.Length}", nameof(weights));
        var matrix = Int8Matrix.Allocate(rows, columns);
        var values = new sbyte[columns];
        for (int n = 0; n < rows; n++)
        {
            QuantizeRow(weights.Slice(n * columns, columns), values, out matrix.Scales[n], out matrix.RowSums[n]);
            matrix.SetRow(n, values);
        }

        return matrix;
    }

    /// <summary>
    /// <see cref="QuantizeRows(ReadOnlySpan{float}, int, int)"/> of a float32 CPU weight <c>[rows, columns]</c> at
    /// <paramref name="weights"/>, rows shared out over the thread pool (a model's projections at load).
    /// </summary>
    public static unsafe Int8Matrix QuantizeRows(float* weights, int rows, int columns)
    {
        var matrix = Int8Matrix.Allocate(rows, columns);
        nint source = (nint)weights;
        Parallel.For(0, (rows + 255) / 256, block =>
        {
            var values = new sbyte[columns];
            for (int n = block * 256; n < Math.Min(rows, (block + 1) * 256); n++)
            {
                QuantizeRow(new ReadOnlySpan<float>((float*)source + (long)n * columns, columns), values, out matrix.Scales[n], out matrix.RowSums[n]);
                matrix.SetRow(n, values);
            }
        });
        return matrix;
    }

    /// <summary>Rows [<paramref name="first"/>, first + count) of <c>Scales[n] · Value(n, k)</c> into <paramref name="destination"/> <c>[count, Columns]</c>.</summary>
    public static void DequantizeRows(Int8Matrix w, int first, int count, Span<float> destination)
    {
        Span<sbyte> values = w.Columns <= 4096 ? stackalloc sbyte[w.Columns] : new sbyte[w.Columns];
        for (int r = 0; r < count; r++)
        {
            var row = destination.Slice(r * w.Columns, w.Columns);
            w.CopyRow(first + r, values);
            float scale = w.Scales[first + r];
            for (int k = 0; k < row.Length; k++)
                row[k] = scale * values[k];
        }
    }

    private static void QuantizeRow(ReadOnlySpan<float> row, Span<sbyte> values, out float scale, out int sum)
    {
        scale = Scale(row);
        sum = 0;
        for (int k = 0; k < row.Length; k++)
        {
            sbyte q = Quantize(row[k], scale);
            values[k] = q;
            sum += q;
        }
    }

    /// <summary>
    /// Quantizes each of <paramref name="rows"/> input rows of <paramref name="x"/> (<c>[rows, k]</c>) per row into
    /// <paramref name="offsetValues"/> as <c>q + 128</c> (0..255) and its scale into <paramref name="scales"/>. A row holding
    /// NaN or infinity gets scale NaN (and bytes of 128), so its outputs are NaN rather than an exception mid-step.
    /// </summary>
    public static void QuantizeInputRows(ReadOnlySpan<float> x, int rows, int k, Span<byte> offsetValues, Span<float> scales)
    {
        for (int m = 0; m < rows; m++)
        {
            var row = x.Slice(m * k, k);
            float max = row.Length == 0 ? 0 : TensorPrimitives.MaxMagnitude(row);
            if (!float.IsFinite(max))
            {
                scales[m] = float.NaN;
                offsetValues.Slice(m * k, k).Fill(128);
                continue;
            }

            float scale = Math.Abs(max) / Limit;
            scales[m] = scale;
            for (int i = 0; i < k; i++)
                offsetValues[m * k + i] = (byte)(Quantize(row[i], scale) + 128);
        }
    }

    private static float Scale(ReadOnlySpan<float> row)
    {
        float max = row.Length == 0 ? 0 : TensorPrimitives.MaxMagnitude(row);
        if (!float.IsFinite(max))
            throw new ArgumentException("cannot quantize a row holding NaN or infinity");
        return Math.Abs(max) / Limit;
    }

    private static sbyte Quantize(float value, float scale) =>
        scale == 0 ? (sbyte)0 : (sbyte)Math.Clamp(MathF.Round(value / scale, MidpointRounding.ToEven), -Limit, Limit);
}
