using Serving.Engine.Checkpoints;
using Serving.Engine.Kernels;
using Serving.Engine.Model;
using Serving.Engine.Quantization;
using Serving.Engine.Sampling;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Kernels;

/// <summary>
/// The MXFP4 projection kernel against exact (double) sums over the dequantized weight: float32 within summation error,
/// bf16 within one rounding of it; a row's bits independent of its batch mates; a prefill's many rows through libtorch's
/// GEMM on the dequantized weight, the same values.
/// </summary>
public sealed unsafe class Mxfp4GemvTests
{
    private static Mxfp4Matrix RandomMatrix(int n, int k, ulong seed)
    {
        var random = new SeededRandom(seed);
        var blocks = new byte[n * k / 2];
        var scales = new byte[n * k / 32];
        for (int i = 0; i < blocks.Length; i++)
            blocks[i] = (byte)(random.NextUInt64() % 256);
        for (int i = 0; i < scales.Length; i++)
            scales[i] = (byte)(120 + random.NextUInt64() % 10);          // 2⁻⁷ … 2²
        return new Mxfp4Matrix(n, k, blocks, scales);
    }

    private static float Round(bool bf16, float v) => bf16 ? BitConverter.Int32BitsToSingle(Bf16.FromFloat(v) << 16) : v;

    [Theory]
    [InlineData(false, 1, 64, 96, false)]
    [InlineData(true, 1, 2880, 64, false)]      // gpt-oss's width
    [InlineData(true, 3, 96, 130, true)]        // bf16 inputs, float32 outputs
    [InlineData(false, 5, 128, 40, false)]      // a group of four and one more
    [InlineData(true, 9, 256, 33, false)]
    public void Apply_RandomWeights_MatchesExactSums(bool bf16, int rows, int k, int n, bool float32Output)
    {
        var w = RandomMatrix(n, k, (ulong)(rows * 7 + k + n));
        var dense = new float[n * k];
        w.Dequantize(0, n, dense);
        var random = new SeededRandom((ulong)(k * 3 + n));
        float[] x = [.. Enumerable.Range(0, rows * k).Select(_ => Round(bf16, (float)(random.NextDouble() * 2 - 1)))];
        float[] bias = [.. Enumerable.Range(0, n).Select(_ => Round(bf16, (float)(random.NextDouble() - 0.5)))];

        var y = Run(w, x, rows, bias, bf16, float32Output);

        for (int m = 0; m < rows; m++)
            for (int o = 0; o < n; o++)
            {
                double exact = bias[o], magnitude = Math.Abs(bias[o]);
                for (int i = 0; i < k; i++)
                {
                    exact += (double)x[m * k + i] * dense[o * k + i];
                    magnitude += Math.Abs((double)x[m * k + i] * dense[o * k + i]);
                }

                double tolerance = 1e-5 * magnitude + (bf16 && !float32Output ? Math.Abs(exact) / 128 : 0) + 1e-6;
                Assert.True(Math.Abs(y[m * n + o] - exact) <= tolerance, $"y[{m}, {o}] = {y[m * n + o]}, exact {exact}");
            }
    }

    [Fact]
    public void Apply_RowAloneOrAmongOthers_SameBits()
    {
        const int k = 256, n = 48, rows = 7;
        var w = RandomMatrix(n, k, 3);
        var random = new SeededRandom(5);
        float[] x = [.. Enumerable.Range(0, rows * k).Select(_ => (float)(random.NextDouble() * 2 - 1))];

        var together = Run(w, x, rows, null, bf16: false, float32Output: true);

        for (int m = 0; m < rows; m++)
            Assert.Equal(together.AsSpan(m * n, n).ToArray(), Run(w, x[(m * k)..((m + 1) * k)], 1, null, bf16: false, float32Output: true));
    }

    /// <summary>Above the kernel's rows a tensor call runs libtorch's GEMM on the dequantized weight: the same values within summation error.</summary>
    [Fact]
    public void ProjectionApply_PrefillRows_DequantizedGemmAgreesWithTheKernel()
    {
        const int k = 128, n = 64, rows = Mxfp4Gemv.MaxRows + 9;
        var weight = ProjectionWeight.CreateMxfp4(RandomMatrix(n, k, 11), ScalarType.Float32);
        using var x = rand(rows, k, ScalarType.Float32);

        using var gemm = weight.Apply(x);
        using var kernel = weight.Apply(x.narrow(0, 0, Mxfp4Gemv.MaxRows).contiguous());

        Assert.True(weight.IsMxfp4);
        Assert.Equal((long)n * k / 2 + n * k / 32, weight.Bytes);
        Assert.True(gemm.narrow(0, 0, Mxfp4Gemv.MaxRows).allclose(kernel, rtol: 1e-5, atol: 1e-5));
    }

    private static float[] Run(Mxfp4Matrix w, float[] x, int rows, float[]? bias, bool bf16, bool float32Output)
    {
        int n = w.Rows;
        var y = new float[rows * n];
        var yBf16 = new ushort[rows * n];
        ushort[] xb = [.. x.Select(Bf16.FromFloat)], bb = [.. (bias ?? []).Select(Bf16.FromFloat)];
        fixed (float* xf = x)
        fixed (ushort* xh = xb)
        fixed (float* bf = bias)
        fixed (ushort* bh = bb)
        fixed (float* yf = y)
        fixed (ushort* yh = yBf16)
        {
            void* input = bf16 ? xh : xf, b = bias is null ? null : bf16 ? bh : bf;
            Mxfp4Gemv.Apply(w, input, rows, bf16, b, float32Output || !bf16 ? yf : yh, float32Output);
        }

        return float32Output || !bf16 ? y : [.. yBf16.Select(v => BitConverter.Int32BitsToSingle(v << 16))];
    }
}
