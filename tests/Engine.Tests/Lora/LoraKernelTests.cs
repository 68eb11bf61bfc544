using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Sampling;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Lora;

/// <summary>The fast CPU kernel against the reference kernel on random shapes, ranks and mappings.</summary>
public sealed class LoraKernelTests
{
    private static IReadOnlyList<(int, float)> Row(int kind, int slots) => kind switch
    {
        0 => [],
        1 => [(0, 1f)],
        2 => [(1, 1f)],
        3 => [(2, 0.25f), (3, 0.75f)],
        4 => [(slots - 1, 1f)],
        _ => [(3, 1f)],
    };

    [Theory]
    [InlineData(1, 37, 53, 5, "Float32")]
    [InlineData(64, 129, 64, 9, "Float32")]
    [InlineData(16, 1024, 96, 33, "Float32")]
    [InlineData(7, 65, 130, 17, "BFloat16")]
    [InlineData(16, 256, 512, 32, "BFloat16")]
    [InlineData(16, 128, 96, 300, "Float32")]
    [InlineData(8, 200, 72, 300, "BFloat16")]
    [InlineData(16, 128, 96, 600, "Float32", 100)]    // runs of 100 rows per adapter: prefill-like slices (GEMM path, addmm_)
    [InlineData(8, 200, 72, 600, "BFloat16", 100)]
    [InlineData(8, 200, 72, 300, "BFloat16", 60)]      // runs shorter than a segment: the row kernel
    public void Apply_RandomCase_CpuKernelEqualsReference(int maxRank, int inF, int outF, int tokens, string dtypeName, int run = 1)
    {
        var dtype = Enum.Parse<ScalarType>(dtypeName);
        var random = new SeededRandom((ulong)(maxRank * 1000 + inF + outF + tokens));
        const int slots = 5;
        int width = outF + 11;   // the projection's output is a slice of a wider fused output
        using var module = new LoraModuleArena(0, LoraTarget.Q, slots, maxRank, inF, outF, dtype, CPU);
        for (int s = 0; s < slots - 1; s++)
        {
            int rank = s == 0 ? maxRank : 1 + (int)(random.NextUInt64() % (ulong)maxRank);
            module.Load(s, new LoraModuleWeights(0, LoraTarget.Q, rank, 0.5f + s,
                Enumerable.Range(0, rank * inF).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray(),
                Enumerable.Range(0, outF * rank).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray()));
        }

        // Rows: single adapters, a two-adapter mix, the empty slot (rank 0), and base-model rows.
        var perRow = Enumerable.Range(0, tokens).Select(t => Row(t / run % 6, slots)).ToList();
        var mapping = LoraBatchMapping.ForSequences(Enumerable.Repeat(1, tokens).ToList(), perRow);
        if (run < LoraBatchMapping.SegmentRows && tokens >= 24)
            Assert.NotEmpty(mapping.RowKernelBlocks);        // rows sharing an adapter take the four-row path too
        Assert.Equal(run >= LoraBatchMapping.SegmentRows, mapping.SegmentGroups.Count > 0);
        using var x = randn(tokens, inF).to(dtype);
        using var y0 = randn(tokens, width).to(dtype);
        using var yReference = y0.clone();
        using var yFast = y0.clone();
        new ReferenceLoraKernel().Apply(x, yReference, 7, module, mapping);
        new CpuLoraKernel().Apply(x, yFast, 7, module, mapping);
        // bfloat16: the reference rounds the update before adding it, the fast kernel rounds once after; allow 2 ulps.
        using var reference32 = yReference.to(ScalarType.Float32);
        float scale = reference32.abs().max().item<float>() + 1;
        float diff = (reference32 - yFast.to(ScalarType.Float32)).abs().max().item<float>();
        float tolerance = scale * (dtype == ScalarType.Float32 ? 1e-5f : 1.6e-2f);
        Assert.True(diff <= tolerance, $"max diff {diff} above {tolerance}");
        using var changed = (yFast.to(ScalarType.Float32) - y0.to(ScalarType.Float32)).abs().sum(1);
        for (int t = 0; t < tokens; t++)
        {
            bool adapted = t / run % 6 is 1 or 2 or 3 or 5;
            Assert.Equal(adapted, changed[t].item<float>() > 0);
        }
    }
}
