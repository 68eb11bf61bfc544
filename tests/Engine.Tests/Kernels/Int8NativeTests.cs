using Serving.Engine.Kernels;
using Serving.Engine.Quantization;

namespace Serving.Engine.Tests.Kernels;

/// <summary>
/// The VNNI int8 kernel (serving_int8.c) against exact integer sums of the same quantized values: equal up to the one
/// float32 product at the end. On a CPU without AVX512-VNNI (see <see cref="Int8Native.Status"/>) these return at once.
/// </summary>
public sealed class Int8NativeTests
{
    private static float[] Random(int count, int seed)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)(r.NextDouble() * 2 - 1))];
    }

    [Theory]
    [InlineData(1, 1024, 2816)]
    [InlineData(4, 1024, 300)]
    [InlineData(3, 37, 53)]       // inputs off the 64-byte grid, outputs off a part
    [InlineData(2, 2816, 5)]
    [InlineData(3, 1024, 8200)]   // 8 MB of weights: several parts per thread, the last block short
    [InlineData(70, 96, 40)]      // more rows than one block of 64, and a last group of two
    [InlineData(8, 1024, 300)]    // a tile of 6 rows, then 2; outputs ending inside a block
    [InlineData(11, 96, 40)]      // 6 rows, then 5
    [InlineData(7, 1030, 70)]     // two tiles (6, then 1) in runs of 32 groups, a last group of two
    [InlineData(12, 300, 130)]    // two tiles of 6, two whole runs and a short one
    [InlineData(9, 128, 64)]      // two tiles, exactly one run
    [InlineData(10, 129, 65)]     // two tiles, one run, then a last group of one input
    [InlineData(13, 96, 40)]      // 6, 6, then 1
    [InlineData(19, 37, 20)]      // three tiles of 6, then 1, a last group of one input
    [InlineData(32, 2816, 70)]    // five tiles of 6, then 2
    public void Gemm_AnyShape_EqualsExactIntegerSums(int rows, int inputs, int outputs)
    {
        if (!Int8Native.IsAvailable)
            return;
        var w = Int8Quantizer.QuantizeRows(Random(outputs * inputs, inputs), outputs, inputs);
        var x = Random(rows * inputs, rows);
        var bias = Random(outputs, 5);
        var offset = new byte[rows * inputs];
        var xScales = new float[rows];
        Int8Quantizer.QuantizeInputRows(x, rows, inputs, offset, xScales);
        int ldy = outputs + 3;
        var y = Enumerable.Repeat(7f, rows * ldy).ToArray();

        Int8Native.Gemm(offset, xScales, rows, w, bias, y, ldy);

        for (int m = 0; m < rows; m++)
        {
            for (int n = 0; n < outputs; n++)
            {
                long dot = 0;
                for (int k = 0; k < inputs; k++)
                    dot += (offset[m * inputs + k] - 128) * w.Value(n, k);
                float expected = xScales[m] * w.Scales[n] * dot + bias[n];
                Assert.True(Math.Abs(y[m * ldy + n] - expected) <= Math.Abs(expected) * 1e-6 + 1e-7, $"({m}, {n}): {y[m * ldy + n]} vs {expected}");
            }

            for (int n = outputs; n < ldy; n++)
                Assert.Equal(7f, y[m * ldy + n]);
        }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    [InlineData(8)]
    [InlineData(13)]
    public void Gemm_RowAloneOrAmongOthers_BitIdentical(int rows)
    {
        if (!Int8Native.IsAvailable)
            return;
        const int inputs = 200, outputs = 130;
        var w = Int8Quantizer.QuantizeRows(Random(outputs * inputs, 1), outputs, inputs);
        var offset = new byte[rows * inputs];
        var scales = new float[rows];
        Int8Quantizer.QuantizeInputRows(Random(rows * inputs, 2), rows, inputs, offset, scales);
        var together = new float[rows * outputs];
        Int8Native.Gemm(offset, scales, rows, w, [], together, outputs);

        for (int m = 0; m < rows; m++)
        {
            var alone = new float[outputs];
            Int8Native.Gemm(offset.AsSpan(m * inputs, inputs), scales.AsSpan(m, 1), 1, w, [], alone, outputs);
            Assert.Equal(together.AsSpan(m * outputs, outputs).ToArray(), alone);
        }
    }

    [Fact]
    public void Gemm_AgainstTheFloatProduct_WithinTheQuantizationBound()
    {
        if (!Int8Native.IsAvailable)
            return;
        const int inputs = 1024, outputs = 256;
        var weights = Random(outputs * inputs, 3);
        var x = Random(inputs, 4);
        var w = Int8Quantizer.QuantizeRows(weights, outputs, inputs);
        var offset = new byte[inputs];
        var scales = new float[1];
        Int8Quantizer.QuantizeInputRows(x, 1, inputs, offset, scales);
        var y = new float[outputs];

        Int8Native.Gemm(offset, scales, 1, w, [], y, outputs);

        for (int n = 0; n < outputs; n++)
        {
            double exact = 0, bound = 0;
            for (int k = 0; k < inputs; k++)
            {
                exact += (double)weights[n * inputs + k] * x[k];
                // |wx − w'x'| ≤ |w|·|x − x'| + |x'|·|w − w'|, each quantization error at most half a step.
                bound += Math.Abs(weights[n * inputs + k]) * scales[0] / 2 + (Math.Abs(x[k]) + scales[0] / 2) * w.Scales[n] / 2;
            }

            Assert.True(Math.Abs(y[n] - exact) <= bound, $"output {n}: {y[n]} vs {exact}, bound {bound}");
        }
    }

    [Theory]
    [InlineData(false, 77)]
    [InlineData(true, 77)]
    [InlineData(false, 7_777)]   // 9 × 7,777 inputs: enough to be shared out over the OpenMP team
    [InlineData(true, 7_777)]
    public unsafe void QuantizeRows_FloatOrBf16Rows_SameBytesAndScalesAsTheQuantizer(bool bf16, int inputs)
    {
        if (!Int8Native.IsAvailable)
            return;
        const int rows = 9;
        var x = Random(rows * inputs, 8);
        x[3 * inputs + 5] = 0;
        Array.Clear(x, 4 * inputs, inputs);   // a row of zeros: scale 0
        if (bf16)
            x = [.. x.Select(v => BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(v) & unchecked((int)0xFFFF0000)))];
        var expectedBytes = new byte[rows * inputs];
        var expectedScales = new float[rows];
        Int8Quantizer.QuantizeInputRows(x, rows, inputs, expectedBytes, expectedScales);
        var bytes = new byte[rows * inputs];
        var scales = new float[rows];
        var halves = x.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray();
        fixed (float* px = x)
        fixed (ushort* ph = halves)
        fixed (byte* pb = bytes)
        fixed (float* ps = scales)
            Int8Native.QuantizeRows(bf16 ? ph : px, bf16, rows, inputs, pb, ps);

        Assert.Equal(expectedScales, scales);
        Assert.Equal(expectedBytes, bytes);
        Assert.Equal(0f, scales[4]);
    }

    [Fact]
    public unsafe void QuantizeRows_RowWithNaN_NaNScaleSoItsOutputsAreNaN()
    {
        if (!Int8Native.IsAvailable)
            return;
        var x = Random(2 * 64, 9);
        x[70] = float.NaN;
        var bytes = new byte[128];
        var scales = new float[2];
        fixed (float* px = x)
        fixed (byte* pb = bytes)
        fixed (float* ps = scales)
            Int8Native.QuantizeRows(px, false, 2, 64, pb, ps);

        Assert.True(float.IsFinite(scales[0]));
        Assert.True(float.IsNaN(scales[1]));
    }
}
