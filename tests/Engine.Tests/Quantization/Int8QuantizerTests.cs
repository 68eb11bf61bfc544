using Serving.Engine.Quantization;

namespace Serving.Engine.Tests.Quantization;

public sealed class Int8QuantizerTests
{
    private static float[] Random(int count, int seed, float spread = 1)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)(r.NextDouble() * 2 - 1) * spread)];
    }

    [Theory]
    [InlineData(7, 33, 1f)]
    [InlineData(64, 1024, 0.02f)]      // weight-sized values
    [InlineData(3, 5, 1000f)]
    public void QuantizeRows_Random_EachValueWithinHalfAStepAndSumsExact(int rows, int columns, float spread)
    {
        var w = Random(rows * columns, rows + columns, spread);

        var q = Int8Quantizer.QuantizeRows(w, rows, columns);

        for (int n = 0; n < rows; n++)
        {
            float max = Enumerable.Range(0, columns).Max(k => Math.Abs(w[n * columns + k]));
            Assert.Equal(max / 127, q.Scales[n]);
            Assert.Equal(Enumerable.Range(0, columns).Sum(k => (int)q.Value(n, k)), q.RowSums[n]);
            Assert.Contains(Row(q, n), v => Math.Abs((int)v) == 127);   // the largest value uses the whole range
            for (int k = 0; k < columns; k++)
            {
                double error = Math.Abs(w[n * columns + k] - (double)q.Scales[n] * q.Value(n, k));
                Assert.True(error <= q.Scales[n] / 2 * (1 + 1e-6), $"({n}, {k}): error {error} above half a step {q.Scales[n] / 2}");
                Assert.InRange(q.Value(n, k), (sbyte)-127, (sbyte)127);
            }
        }
    }

    [Fact]
    public void QuantizeRows_ZeroRow_ScaleZeroAndZeros()
    {
        var q = Int8Quantizer.QuantizeRows([0, 0, 0, 1, -2, 0.5f], 2, 3);

        Assert.Equal(0, q.Scales[0]);
        Assert.Equal([0, 0, 0], Row(q, 0).Select(v => (int)v));
        Assert.Equal([64, -127, 32], Row(q, 1).Select(v => (int)v));
    }

    [Fact]
    public void QuantizeRows_NaN_Refused()
    {
        Assert.Throws<ArgumentException>(() => Int8Quantizer.QuantizeRows([1, float.NaN], 1, 2));
    }

    [Fact]
    public void QuantizeInputRows_OffsetBy128()
    {
        var offset = new byte[4];
        var scales = new float[1];

        Int8Quantizer.QuantizeInputRows([1.27f, -1.27f, 0, 0.635f], 1, 4, offset, scales);

        Assert.Equal(0.01f, scales[0], 6);
        Assert.Equal(new byte[] { 255, 1, 128, 192 }, offset);
    }

    [Fact]
    public unsafe void QuantizeRows_FromMemoryInParallel_SameAsFromASpan()
    {
        const int rows = 600, columns = 48;   // several blocks of 256 rows
        var w = Random(rows * columns, 11, 0.05f);
        var expected = Int8Quantizer.QuantizeRows(w, rows, columns);

        Int8Matrix actual;
        fixed (float* p = w)
            actual = Int8Quantizer.QuantizeRows(p, rows, columns);

        Assert.Equal(expected.Packed.ToArray(), actual.Packed.ToArray());
        Assert.Equal(expected.Scales, actual.Scales);
        Assert.Equal(expected.RowSums, actual.RowSums);
    }

    [Fact]
    public void DequantizeRows_SomeRows_ScaleTimesValue()
    {
        var q = Int8Quantizer.QuantizeRows(Random(4 * 10, 12), 4, 10);
        var rows = new float[2 * 10];

        Int8Quantizer.DequantizeRows(q, 1, 2, rows);

        for (int r = 0; r < 2; r++)
            for (int k = 0; k < 10; k++)
                Assert.Equal(q.Scales[1 + r] * q.Value(1 + r, k), rows[r * 10 + k]);
    }

    [Fact]
    public void QuantizeInputRows_RowWithInfinity_NaNScaleAndMidpointBytes()
    {
        var offset = new byte[4];
        var scales = new float[2];

        Int8Quantizer.QuantizeInputRows([1f, -1f, float.PositiveInfinity, 2f], 2, 2, offset, scales);

        Assert.Equal(1f / 127, scales[0]);
        Assert.True(float.IsNaN(scales[1]));
        Assert.Equal(new byte[] { 255, 1, 128, 128 }, offset);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(5, 33)]
    [InlineData(300, 1024)]
    public unsafe void QuantizeRows_AnyShape_ValuesStartOnA64ByteBoundary(int rows, int columns)
    {
        var q = Int8Quantizer.QuantizeRows(Random(rows * columns, 3), rows, columns);

        fixed (sbyte* values = q.Packed)
            Assert.Equal(0L, (long)values % 64);
        Assert.Equal((rows + 63) / 64 * 64 * ((columns + 3) / 4 * 4), q.Packed.Length);
    }

    [Theory]
    [InlineData(70, 10)]    // a second, partial block of rows and a last, partial group of inputs
    [InlineData(64, 8)]
    public void QuantizeRows_PackedLayout_BlocksOfGroupsAndZeroPadding(int rows, int columns)
    {
        var q = Int8Quantizer.QuantizeRows(Random(rows * columns, 4), rows, columns);
        int padded = (columns + 3) / 4 * 4;
        var packed = q.Packed.ToArray();

        var seen = new bool[packed.Length];
        for (int n = 0; n < rows; n++)
        {
            for (int k = 0; k < columns; k++)
            {
                int index = n / 64 * 64 * padded + k / 4 * 256 + n % 64 * 4 + k % 4;
                Assert.Equal(q.Value(n, k), packed[index]);
                seen[index] = true;
            }
        }

        Assert.Equal(padded, q.PaddedColumns);
        for (int i = 0; i < packed.Length; i++)
            if (!seen[i])
                Assert.Equal(0, packed[i]);
    }

    [Fact]
    public void Value_OutsideTheMatrix_Throws()
    {
        var q = Int8Quantizer.QuantizeRows(Random(3 * 5, 6), 3, 5);

        Assert.Throws<ArgumentOutOfRangeException>(() => q.Value(3, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => q.Value(0, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => q.Value(-1, 0));
    }

    private static sbyte[] Row(Int8Matrix q, int n)
    {
        var row = new sbyte[q.Columns];
        q.CopyRow(n, row);
        return row;
    }
}
