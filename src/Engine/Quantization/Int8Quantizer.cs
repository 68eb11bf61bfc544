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
        var values = new sbyte[weights.Length];
        var scales = new float[rows];
        var sums = new int[rows];
        for (int n = 0; n < rows; n++)
        {
            var row = weights.Slice(n * columns, columns);
            float scale = Scale(row);
            scales[n] = scale;
            int sum = 0;
            for (int k = 0; k < columns; k++)
            {
                sbyte q = Quantize(row[k], scale);
                values[n * columns + k] = q;
                sum += q;
            }

            sums[n] = sum;
        }

        return new Int8Matrix(rows, columns, values, scales, sums);
    }

    /// <summary>
    /// Quantizes each of <paramref name="rows"/> input rows of <paramref name="x"/> (<c>[rows, k]</c>) per row into
    /// <paramref name="offsetValues"/> as <c>q + 128</c> (0..255) and its scale into <paramref name="scales"/>.
    /// </summary>
    public static void QuantizeInputRows(ReadOnlySpan<float> x, int rows, int k, Span<byte> offsetValues, Span<float> scales)
    {
        for (int m = 0; m < rows; m++)
        {
            var row = x.Slice(m * k, k);
            float scale = Scale(row);
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
