namespace Serving.Engine.Quantization;

/// <summary>
/// A weight matrix <c>[Rows, Columns]</c> quantized symmetrically per row: <c>W[n, k] ≈ Scales[n] · Values[n, k]</c> with
/// <c>Values</c> in [−127, 127] (row-major), and <c>RowSums[n] = Σ_k Values[n, k]</c>, which the VNNI kernel needs to take
/// the +128 offset of its unsigned inputs back out.
/// </summary>
public sealed record Int8Matrix(int Rows, int Columns, sbyte[] Values, float[] Scales, int[] RowSums)
{
    /// <summary>Bytes of the quantized form (values, scales, sums).</summary>
    public long Bytes => Values.LongLength + (Scales.LongLength + RowSums.LongLength) * 4;
}
