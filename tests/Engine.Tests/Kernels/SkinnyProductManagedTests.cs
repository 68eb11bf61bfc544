using Serving.Engine.Kernels;
using Serving.Engine.Sampling;

namespace Serving.Engine.Tests.Kernels;

/// <summary>
/// The AVX2 skinny product (DoRA's W·Aᵀ without AVX-512) against double-precision sums of the same values: float32 weights
/// within float32 summation error, bfloat16 weights exactly widened so the same bound holds. A weight row's result must
/// not depend on which block of rows it fell in. On a CPU without AVX2 and FMA these return at once.
/// </summary>
public sealed unsafe class SkinnyProductManagedTests
{
    [Theory]
    [InlineData(false, 16, 768, 2304)]   // bench preset q/k/v, rank 16
    [InlineData(true, 16, 768, 2048)]    // gate/up in bf16
    [InlineData(false, 4, 37, 13)]       // inputs off every vector grid, outputs off the block of six
    [InlineData(true, 20, 300, 7)]       // two column blocks, k over one chunk
    [InlineData(false, 1, 1, 1)]
    [InlineData(true, 33, 513, 25)]
    public void Multiply_AnyShape_WritesWTimesXTransposedWithinSummationError(bool bf16, int rows, int k, int n)
    {
        if (!SkinnyProductManaged.IsSupported)
            return;
        var random = new SeededRandom((ulong)(rows * 131 + k * 7 + n));
        float[] x = [.. Enumerable.Range(0, rows * k).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        float[] w = [.. Enumerable.Range(0, n * k).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        ushort[] wBf16 = [.. w.Select(v => (ushort)(BitConverter.SingleToInt32Bits(v) >>> 16))];
        if (bf16)
            w = [.. wBf16.Select(b => BitConverter.Int32BitsToSingle(b << 16))];
        int ldy = rows + 3;
        var y = Enumerable.Repeat(float.NaN, n * ldy).ToArray();

        fixed (float* px = x)
        fixed (float* pw = w)
        fixed (ushort* pb = wBf16)
        fixed (float* py = y)
            SkinnyProductManaged.Multiply(px, rows, k, k, bf16 ? pb : pw, bf16, n, py, ldy);

        for (int o = 0; o < n; o++)
        {
            for (int m = 0; m < rows; m++)
            {
                double exact = 0, magnitude = 0;
                for (int i = 0; i < k; i++)
                {
                    exact += (double)x[m * k + i] * w[o * k + i];
                    magnitude += Math.Abs((double)x[m * k + i] * w[o * k + i]);
                }

                Assert.True(Math.Abs(y[o * ldy + m] - exact) <= magnitude * 1e-6 + 1e-30, $"y[{o}, {m}] = {y[o * ldy + m]}, exact {exact}");
            }

            for (int m = rows; m < ldy; m++)
                Assert.True(float.IsNaN(y[o * ldy + m]), $"y[{o}, {m}] beyond the rows was written");
        }
    }

    [Fact]
    public void Multiply_RowAloneOrInABlock_SameBits()
    {
        if (!SkinnyProductManaged.IsSupported)
            return;
        const int Rows = 16, K = 700, N = 13;
        var random = new SeededRandom(5);
        float[] x = [.. Enumerable.Range(0, Rows * K).Select(_ => (float)(random.NextDouble() - 0.5))];
        float[] w = [.. Enumerable.Range(0, N * K).Select(_ => (float)(random.NextDouble() - 0.5))];
        var all = new float[N * Rows];
        var alone = new float[Rows];
        fixed (float* px = x)
        fixed (float* pw = w)
        {
            fixed (float* py = all)
                SkinnyProductManaged.Multiply(px, Rows, K, K, pw, false, N, py, Rows);
            for (int o = 0; o < N; o++)
            {
                fixed (float* py = alone)
                    SkinnyProductManaged.Multiply(px, Rows, K, K, pw + o * K, false, 1, py, Rows);
                Assert.Equal(all.AsSpan(o * Rows, Rows).ToArray(), alone);
            }
        }
    }
}
