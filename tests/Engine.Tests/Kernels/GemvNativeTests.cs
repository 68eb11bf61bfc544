using Serving.Engine.Kernels;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Kernels;

/// <summary>
/// The small-batch projection kernel (serving_gemv.c, or its AVX2 twin GemvManaged where the CPU lacks AVX512-BF16; through
/// <see cref="ProjectionWeight.Apply"/>) against double-precision
/// sums of the same values: float32 within float32 summation error, bfloat16 within its one rounding. A row's result must
/// not depend on how many rows share the call. The Wide and Read kernels are native only: on a CPU without AVX512-BF16 (see
/// <see cref="GemvNative.Status"/>) those return at once; <c>ServingNativeBuildTests</c> pins that a CPU that has it uses it.
/// </summary>
public sealed class GemvNativeTests
{
    [Theory]
    [InlineData(1, 768, 2304)]     // bench preset q/k/v, one decode row
    [InlineData(4, 768, 768)]      // four rows: the largest block
    [InlineData(3, 37, 53)]        // inputs off the 32 (bf16) and 16 (f32) grid, outputs off the block of four
    [InlineData(2, 64, 5)]         // fewer outputs than one part of the team
    [InlineData(1, 1000, 130)]
    [InlineData(5, 768, 2304)]     // one group of four rows and a remainder of one
    [InlineData(8, 37, 53)]        // groups of four off the input grid, outputs off the block of four
    [InlineData(64, 256, 130)]     // the most rows the native kernel takes
    public void Apply_Float32_MatchesExactSums(int rows, int inputs, int outputs)
    {
        if (!SmallBatchGemv.IsAvailable)
            return;
        manual_seed(rows * 31 + inputs + outputs);
        using var w = randn(outputs, inputs);
        using var bias = randn(outputs);
        using var x = randn(rows, inputs);
        using var weight = ProjectionWeight.Create(w.clone(), packForAmx: false);

        using var y = weight.Apply(x, bias, smallBatchKernel: true);

        Assert.Equal(ScalarType.Float32, y.dtype);
        var (exact, magnitude) = ExactSums(x, w, bias);
        var got = Values(y);
        for (int i = 0; i < got.Length; i++)
            Assert.True(Math.Abs(got[i] - exact[i]) <= magnitude[i] * 1e-6, $"output {i}: {got[i]} vs exact {exact[i]}");
    }

    [Theory]
    [InlineData(1, 768, 2304, false)]
    [InlineData(4, 768, 3072, false)]
    [InlineData(3, 37, 53, false)]
    [InlineData(2, 96, 50257, true)]  // lm_head shape: float32 logits from bf16 weights
    [InlineData(1, 33, 7, true)]
    [InlineData(7, 768, 2304, false)]  // a group of four rows and a remainder of three
    [InlineData(32, 96, 1003, false)]
    [InlineData(13, 37, 53, true)]
    public void Apply_BFloat16_WithinOneRoundingOfExactSums(int rows, int inputs, int outputs, bool float32Output)
    {
        if (!SmallBatchGemv.IsAvailable)
            return;
        manual_seed(rows * 17 + inputs + outputs);
        using var w = randn(outputs, inputs).to(ScalarType.BFloat16);
        using var bias = randn(outputs).to(ScalarType.BFloat16);
        using var x = randn(rows, inputs).to(ScalarType.BFloat16);
        using var weight = ProjectionWeight.Create(w.clone(), packForAmx: false);

        using var y = weight.Apply(x, float32Output ? null : bias, float32Output, smallBatchKernel: true);

        Assert.Equal(float32Output ? ScalarType.Float32 : ScalarType.BFloat16, y.dtype);
        var (exact, magnitude) = ExactSums(x, w, float32Output ? null : bias);
        var got = Values(y);
        // One rounding to bf16 (8 significant bits) of the result, plus float32 summation error.
        double rounding = float32Output ? 0 : 1.0 / 256;
        for (int i = 0; i < got.Length; i++)
            Assert.True(Math.Abs(got[i] - exact[i]) <= Math.Abs(exact[i]) * rounding + magnitude[i] * 1e-6, $"output {i}: {got[i]} vs exact {exact[i]}");
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float32)]
    public void Apply_RowAloneOrAmongFour_BitIdentical(ScalarType dtype)
    {
        if (!SmallBatchGemv.IsAvailable)
            return;
        manual_seed(7);
        using var w = randn(300, 200).to(dtype);
        using var x = randn(4, 200).to(dtype);
        using var weight = ProjectionWeight.Create(w.clone(), packForAmx: false);

        using var together = weight.Apply(x, smallBatchKernel: true);
        for (int m = 0; m < 4; m++)
        {
            using var alone = weight.Apply(x.narrow(0, m, 1).contiguous(), smallBatchKernel: true);
            Assert.True(alone.allclose(together.narrow(0, m, 1), rtol: 0, atol: 0), $"row {m} differs alone and among four");
        }
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float32)]
    public void Apply_GroupedRows_ARowDoesNotDependOnItsBatchMatesValues(ScalarType dtype)
    {
        if (!GemvNative.IsAvailable)
            return;
        manual_seed(8);
        using var w = randn(300, 200).to(dtype);
        using var x = randn(10, 200).to(dtype);
        using var others = randn(10, 200).to(dtype);
        using var weight = ProjectionWeight.Create(w.clone(), packForAmx: false);
        using var together = weight.Apply(x, smallBatchKernel: true);

        foreach (int m in new[] { 2, 9 })   // in a group of four, and in the remainder
        {
            using var mates = others.clone();
            mates[m] = x[m];
            using var changed = weight.Apply(mates, smallBatchKernel: true);
            Assert.True(changed.narrow(0, m, 1).allclose(together.narrow(0, m, 1), rtol: 0, atol: 0), $"row {m} changed with its batch mates");
        }
    }

    /// <summary>
    /// Batch invariance: a row's outputs are the same bits alone and in a call of any row count up to the kernel's, in a group
    /// of four (the wide blocks) or the remainder (the row kernel), with inputs off the chunk grid and outputs off the block
    /// of four — so a sequence decodes the same whatever else is in its step (speculative drafts included).
    /// </summary>
    [Theory]
    [InlineData(ScalarType.BFloat16, false)]
    [InlineData(ScalarType.BFloat16, true)]
    [InlineData(ScalarType.Float32, false)]
    public void Apply_RowAloneOrInAnyBatch_BitIdentical(ScalarType dtype, bool float32Output)
    {
        if (!GemvNative.IsAvailable)
            return;
        manual_seed(9);
        using var w = randn(131, 1000).to(dtype);
        using var bias = randn(131).to(dtype);
        using var x = randn(GemvNative.MaxRows, 1000).to(dtype);
        using var weight = ProjectionWeight.Create(w.clone(), packForAmx: false);
        var useBias = float32Output ? null : bias;
        using var alone = cat([.. Enumerable.Range(0, 13).Select(m => weight.Apply(x.narrow(0, m, 1).contiguous(), useBias, float32Output, smallBatchKernel: true))]);

        foreach (int rows in new[] { 2, 3, 4, 5, 7, 8, 13, GemvNative.MaxRows })
        {
            using var together = weight.Apply(x.narrow(0, 0, rows).contiguous(), useBias, float32Output, smallBatchKernel: true);
            int compared = Math.Min(rows, 13);
            Assert.True(together.narrow(0, 0, compared).allclose(alone.narrow(0, 0, compared), rtol: 0, atol: 0), $"a row differs alone and among {rows}");
        }
    }

    [Fact]
    public void Apply_MoreRowsThanTheKernelTakes_LeavesItForLibtorch()
    {
        manual_seed(3);
        using var w = randn(40, 64);
        using var x = randn(SmallBatchGemv.MaxRows + 1, 64);
        using var weight = ProjectionWeight.Create(w.clone(), packForAmx: false);

        using var y = weight.Apply(x, smallBatchKernel: true);
        using var expected = nn.functional.linear(x, w);

        Assert.True(y.allclose(expected, rtol: 0, atol: 0));
    }

    [Theory]
    [InlineData(ScalarType.Float32, 16, 1000, 130)]   // a rank-16 A against a weight: four blocks of four rows
    [InlineData(ScalarType.BFloat16, 16, 1024, 257)]  // outputs off the block of four weight rows
    [InlineData(ScalarType.Float32, 4, 37, 5)]        // inputs off the 16-element grid, fewer outputs than one block
    [InlineData(ScalarType.BFloat16, 8, 33, 70)]      // inputs off the 32-element grid
    [InlineData(ScalarType.BFloat16, 32, 96, 23)]     // more passes over x rows than weight rows a pass prefetches
    [InlineData(ScalarType.Float32, 12, 50, 9)]       // three passes: the next block's rows shared unevenly
    public unsafe void Wide_AnyShape_WritesWTimesXTransposedWithinSummationError(ScalarType dtype, int rows, int inputs, int outputs)
    {
        if (!GemvNative.IsAvailable)
            return;
        manual_seed(rows * 13 + inputs + outputs);
        int elementSize = dtype == ScalarType.BFloat16 ? 2 : 4;
        long ldx = GemvNative.WideRowStride(inputs, elementSize);
        using var w = randn(outputs, inputs).to(dtype);
        using var padded = randn(rows, ldx).to(dtype);             // the columns past the inputs must be ignored
        using var x = padded.narrow(1, 0, inputs).contiguous();
        int ldy = rows + 3;
        using var y = tensor(Enumerable.Repeat(7f, outputs * ldy).ToArray(), [outputs, ldy]);   // the columns past the rows must stay as they are

        nint px = (nint)Serving.Engine.Runtime.CpuTensorMemory.Address(padded), pw = (nint)Serving.Engine.Runtime.CpuTensorMemory.Address(w),
            py = (nint)Serving.Engine.Runtime.CpuTensorMemory.Address(y);
        if (dtype == ScalarType.BFloat16)
            GemvNative.WideBf16(px, rows, ldx, inputs, pw, outputs, py, ldy);
        else
            GemvNative.WideF32(px, rows, ldx, inputs, pw, outputs, py, ldy);

        var (exact, magnitude) = ExactSums(x, w, null);
        var got = Values(y);
        for (int n = 0; n < outputs; n++)
        {
            for (int m = 0; m < rows; m++)
                Assert.True(Math.Abs(got[n * ldy + m] - exact[m * outputs + n]) <= magnitude[m * outputs + n] * 1e-5,
                    $"output ({n}, {m}): {got[n * ldy + m]} vs exact {exact[m * outputs + n]}");
            for (int m = rows; m < ldy; m++)
                Assert.Equal(7, got[n * ldy + m]);
        }
    }

    [Fact]
    public void Wide_RowsNotAMultipleOfFour_Refused()
    {
        if (!GemvNative.IsAvailable)
            return;
        Assert.Throws<ArgumentOutOfRangeException>(() => GemvNative.WideF32(1, 6, 8, 8, 1, 4, 1, 6));
    }

    /// <summary>Σ_k x[m, k]·w[n, k] + bias[n] in double, and Σ_k |x[m, k]·w[n, k]| (what summation error scales with), row-major [m, n].</summary>
    private static (double[] Exact, double[] Magnitude) ExactSums(Tensor x, Tensor w, Tensor? bias)
    {
        int rows = (int)x.size(0), inputs = (int)x.size(1), outputs = (int)w.size(0);
        double[] xs = Values(x), ws = Values(w), bs = bias is null ? new double[outputs] : Values(bias);
        var exact = new double[rows * outputs];
        var magnitude = new double[rows * outputs];
        for (int m = 0; m < rows; m++)
            for (int n = 0; n < outputs; n++)
            {
                double sum = bs[n], abs = Math.Abs(bs[n]);
                for (int k = 0; k < inputs; k++)
                {
                    double p = xs[m * inputs + k] * ws[n * inputs + k];
                    sum += p;
                    abs += Math.Abs(p);
                }

                exact[m * outputs + n] = sum;
                magnitude[m * outputs + n] = abs;
            }

        return (exact, magnitude);
    }

    private static double[] Values(Tensor t)
    {
        using var d = t.to(ScalarType.Float64).contiguous();
        return d.data<double>().ToArray();
    }

    [Fact]
    public unsafe void Read_AWholeBuffer_ReadsEveryByte()
    {
        if (!GemvNative.IsAvailable)
            return;
        using var none = zeros(1 << 20, ScalarType.Byte);
        using var ones = none.clone();
        ones[12345] = tensor((byte)1);

        double zero = GemvNative.Read((nint)Serving.Engine.Runtime.CpuTensorMemory.Address(none), 1 << 20);
        double one = GemvNative.Read((nint)Serving.Engine.Runtime.CpuTensorMemory.Address(ones), 1 << 20);

        Assert.Equal(0, zero);
        Assert.NotEqual(0, one);
    }
}
