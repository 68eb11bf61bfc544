using Serving.Engine.Kernels;
using Serving.Engine.Sampling;

namespace Serving.Engine.Tests.Kernels;

/// <summary>
/// The AVX2 small-batch kernel called directly (on an AVX-512 machine <see cref="SmallBatchGemv"/> picks the native one, so
/// these keep the twin tested there too): float32 within summation error of double sums, bf16 within one rounding, and a
/// row's bits independent of its batch mates. On a CPU without AVX2 and FMA these return at once.
/// </summary>
public sealed unsafe class GemvManagedTests
{
    [Theory]
    [InlineData(false, 1, 768, 2304, false)]
    [InlineData(false, 4, 37, 13, false)]       // k off the 16-wide step: the tail runs in order
    [InlineData(true, 3, 1000, 70, false)]
    [InlineData(true, 2, 64, 129, true)]        // bf16 weights, float32 logits
    [InlineData(true, 4, 48, 5, false)]
    [InlineData(false, 8, 768, 100, false)]     // two groups of four
    [InlineData(true, 13, 100, 33, false)]      // a group's tail
    [InlineData(false, 16, 2048, 70, false)]    // the most rows
    public void Run_AnyShape_MatchesExactSums(bool bf16, int rows, int k, int n, bool float32Output)
    {
        if (!GemvManaged.IsSupported)
            return;
        var random = new SeededRandom((ulong)(rows * 1000 + k + n));
        float[] Values(int count) => [.. Enumerable.Range(0, count).Select(_ => Round(bf16, (float)(random.NextDouble() * 2 - 1)))];
        float[] x = Values(rows * k), w = Values(n * k), bias = Values(n);
        var y = new float[rows * n];
        var yBf16 = new ushort[rows * n];

        Run(bf16, x, rows, k, w, bias, n, y, yBf16, float32Output);

        for (int m = 0; m < rows; m++)
            for (int o = 0; o < n; o++)
            {
                double exact = bias[o], magnitude = Math.Abs(bias[o]);
                for (int i = 0; i < k; i++)
                {
                    exact += (double)x[m * k + i] * w[o * k + i];
                    magnitude += Math.Abs((double)x[m * k + i] * w[o * k + i]);
                }

                float got = bf16 && !float32Output ? BitConverter.Int32BitsToSingle(yBf16[m * n + o] << 16) : y[m * n + o];
                double bound = magnitude * 1e-6 + (bf16 && !float32Output ? Math.Abs(exact) / 256 : 0);
                Assert.True(Math.Abs(got - exact) <= bound, $"y[{m}, {o}] = {got}, exact {exact}");
            }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Run_RowAloneOrAmongTheMostRows_SameBits(bool bf16)
    {
        if (!GemvManaged.IsSupported)
            return;
        const int K = 300, N = 90, Rows = GemvManaged.MaxRows;
        var random = new SeededRandom(17);
        float[] x = [.. Enumerable.Range(0, Rows * K).Select(_ => Round(bf16, (float)(random.NextDouble() - 0.5)))];
        float[] w = [.. Enumerable.Range(0, N * K).Select(_ => Round(bf16, (float)(random.NextDouble() - 0.5)))];
        var together = new float[Rows * N];
        Run(bf16, x, Rows, K, w, null, N, together, new ushort[Rows * N], float32Output: true);
        for (int m = 0; m < Rows; m++)
        {
            var alone = new float[N];
            Run(bf16, x[(m * K)..((m + 1) * K)], 1, K, w, null, N, alone, new ushort[N], float32Output: true);
            Assert.Equal(together[(m * N)..((m + 1) * N)], alone);
        }
    }

    private static float Round(bool bf16, float value) => bf16 ? BitConverter.Int32BitsToSingle(Bf16.FromFloat(value) << 16) : value;

    private static void Run(bool bf16, float[] x, int rows, int k, float[] w, float[]? bias, int n, float[] y, ushort[] yBf16, bool float32Output)
    {
        if (!bf16)
        {
            fixed (float* px = x)
            fixed (float* pw = w)
            fixed (float* pb = bias)
            fixed (float* py = y)
                GemvManaged.F32((nint)px, rows, k, (nint)pw, (nint)pb, n, (nint)py, n);
            return;
        }

        ushort[] Narrow(float[] v) => [.. v.Select(Bf16.FromFloat)];
        ushort[] xb = Narrow(x), wb = Narrow(w);
        ushort[]? bb = bias is null ? null : Narrow(bias);
        fixed (ushort* px = xb)
        fixed (ushort* pw = wb)
        fixed (ushort* pb = bb)
        fixed (float* py = y)
        fixed (ushort* pyb = yBf16)
            GemvManaged.Bf16((nint)px, rows, k, (nint)pw, (nint)pb, n, float32Output ? (nint)py : (nint)pyb, n, float32Output);
    }
}
