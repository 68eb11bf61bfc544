using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Sampling;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Kernels;

/// <summary>
/// The AVX512-BF16 LoRA row kernel (serving_lora.c, through <see cref="CpuLoraKernel"/>) against double-precision sums
/// of the same bf16 values, within the two roundings it is allowed (h to bf16, y once). On a CPU without AVX512-BF16 (see
/// <see cref="LoraNative.Status"/>) these return at once; <c>ServingNativeBuildTests</c> pins that a CPU that has it uses it.
/// </summary>
public sealed class LoraNativeTests
{
    [Theory]
    [InlineData(16, 1024, 1024, 32, 1)]   // bench q projection: 32 rows, each its own slot (single rows)
    [InlineData(16, 1024, 256, 32, 4)]    // k/v: blocks of four rows per slot
    [InlineData(1, 37, 53, 9, 1)]         // rank 1, inputs and outputs off the 32 grid
    [InlineData(64, 65, 130, 12, 4)]      // the largest native rank, odd sizes, blocks
    [InlineData(7, 200, 72, 11, 3)]       // odd rank: a half-filled last pair; runs of three rows
    [InlineData(33, 31, 33, 6, 2)]
    [InlineData(16, 96, 80, 40, 20)]      // runs of 16 and 4 rows: several groups of four per call
    [InlineData(5, 64, 40, 23, 23)]       // runs of 16 and 7 rows: a last group of three
    [InlineData(15, 100, 70, 13, 13)]     // a run of 13: expand groups of eight and five
    [InlineData(9, 64, 1000, 6, 1)]       // single rows, odd rank: the wide shrink (8 sums) plus one, paired expand plus a half pair
    [InlineData(24, 48, 96, 12, 6)]       // single-row shrink of 16 and 8 sums does not apply; runs of six
    [InlineData(40, 33, 64, 5, 1)]        // single rows, rank 40: wide shrinks of 16, 16 and 8
    public void Apply_RandomCase_WithinTwoBf16RoundingsOfExactSums(int rank, int inF, int outF, int rows, int rowsPerSlot)
    {
        if (!LoraNative.IsAvailable)
            return;
        var kernel = new CpuLoraKernel();
        Assert.True(kernel.NativeBf16Rows);
        var random = new SeededRandom((ulong)(rank * 7919 + inF * 31 + outF + rows));
        int slots = rows / rowsPerSlot + 1, width = outF + 9;
        const int offset = 5;
        using var module = new LoraModuleArena(0, LoraTarget.Q, slots, rank, inF, outF, ScalarType.BFloat16, CPU);
        for (int s = 0; s < slots; s++)
            module.Load(s, new LoraModuleWeights(0, LoraTarget.Q, rank, 0.5f + s,
                Enumerable.Range(0, rank * inF).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray(),
                Enumerable.Range(0, outF * rank).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray()));
        var perRow = Enumerable.Range(0, rows).Select(t => (IReadOnlyList<AdapterSlotWeight>)[(t / rowsPerSlot, 0.75f)]).ToList();
        var mapping = LoraBatchMapping.ForSequences(Enumerable.Repeat(1, rows).ToList(), perRow);
        manual_seed(rank + inF + outF);
        using var x = randn(rows, inF).to(ScalarType.BFloat16);
        using var y0 = randn(rows, width).to(ScalarType.BFloat16);
        using var y = y0.clone();

        ((ILoraKernel)kernel).Apply(x, y, offset, module, mapping);

        float[] xs = Floats(x), ys = Floats(y0), got = Floats(y), a = Floats(module.A), bt = Floats(module.Bt);
        for (int t = 0; t < rows; t++)
        {
            int slot = t / rowsPerSlot;
            double factor = 0.75 * module.Scales[slot];
            var h = new double[rank];
            for (int j = 0; j < rank; j++)
            {
                double sum = 0;
                for (int i = 0; i < inF; i++)
                    sum += (double)a[(slot * rank + j) * inF + i] * xs[t * inF + i];
                h[j] = factor * sum;
            }

            for (int o = 0; o < width; o++)
            {
                double before = ys[t * width + o], actual = got[t * width + o];
                if (o < offset || o >= offset + outF)
                {
                    Assert.Equal(before, actual);   // outside this projection's slice: untouched
                    continue;
                }

                double exact = before, spread = 0;
                for (int j = 0; j < rank; j++)
                {
                    double term = h[j] * bt[(slot * rank + j) * outF + (o - offset)];
                    exact += term;
                    spread += Math.Abs(term);
                }

                // h rounded to bf16 (2^-9 relative each), y rounded once (2^-9 relative), float32 sums (tiny).
                double bound = spread * Math.Pow(2, -8) + Math.Abs(exact) * Math.Pow(2, -8) + 1e-5;
                Assert.True(Math.Abs(actual - exact) <= bound, $"row {t} output {o - offset}: {actual} vs exact {exact} (bound {bound})");
            }
        }
    }

    [Theory]
    [InlineData(16, 1024, 1024)]
    [InlineData(7, 100, 70)]      // odd rank, outputs off the 32 grid
    public void Apply_RowAloneOrInARunOfAnySize_GivesTheSameBits(int rank, int inF, int outF)
    {
        // A row's result must not depend on which rows share its call (the batch it runs in): greedy decoding of a request
        // then gives the same tokens alone as in any batch. This catches a run computing its rows differently from a lone
        // row (other factors, other rows' data, a different rounding of h); a mere reordering of the float32 sums mostly
        // vanishes in the bf16 rounding of y, so the kernel keeps one summation order for every group size by construction.
        if (!LoraNative.IsAvailable)
            return;
        var kernel = new CpuLoraKernel();
        var random = new SeededRandom((ulong)(rank + inF + outF));
        using var module = new LoraModuleArena(0, LoraTarget.Q, 1, rank, inF, outF, ScalarType.BFloat16, CPU);
        module.Load(0, new LoraModuleWeights(0, LoraTarget.Q, rank, 2f,
            Enumerable.Range(0, rank * inF).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray(),
            Enumerable.Range(0, outF * rank).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray()));
        manual_seed(rank);
        using var x = randn(16, inF).to(ScalarType.BFloat16);
        using var y0 = randn(16, outF).to(ScalarType.BFloat16);

        Tensor Run(int rows)
        {
            var mapping = LoraBatchMapping.ForSequences(Enumerable.Repeat(1, rows).ToList(),
                Enumerable.Range(0, rows).Select(_ => (IReadOnlyList<AdapterSlotWeight>)[(0, 1f)]).ToList());
            var y = y0.narrow(0, 0, rows).clone();
            ((ILoraKernel)kernel).Apply(x.narrow(0, 0, rows).contiguous(), y, 0, module, mapping);
            return y;
        }

        using var alone = Run(1);
        foreach (int rows in new[] { 2, 5, 8, 9, 16 })
        {
            using var inRun = Run(rows);
            Assert.True(alone[0].eq(inRun[0]).all().item<bool>(), $"row 0 alone differs from row 0 in a run of {rows}");
        }
    }

    [Fact]
    public void Constructor_NativeOff_KeepsRowsOnTheCSharpKernel()
    {
        Assert.False(new CpuLoraKernel(nativeBf16Rows: false).NativeBf16Rows);
        Assert.Equal(LoraNative.IsAvailable, new CpuLoraKernel().NativeBf16Rows);
    }

    private static float[] Floats(Tensor t)
    {
        using var f = t.to(ScalarType.Float32).contiguous();
        return f.data<float>().ToArray();
    }
}
