using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Sampling;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Lora;

/// <summary>The fast CPU kernel and the device (gather) kernel against the reference kernel on random shapes, ranks and mappings.</summary>
public sealed class LoraKernelTests
{
    private static IReadOnlyList<AdapterSlotWeight> Row(int kind, int slots) => kind switch
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
    [InlineData(16, 128, 96, 3300, "Float32", 550)]   // runs of 550 rows per adapter: prefill-like slices (GEMM path, addmm_)
    [InlineData(8, 200, 72, 3300, "BFloat16", 550)]
    [InlineData(8, 200, 72, 600, "BFloat16", 100)]     // runs shorter than a segment: the row kernel
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
            Assert.Contains(mapping.RowKernelItems, item => item.Length > 1);   // rows sharing an adapter take the block path too
        Assert.Equal(run >= LoraBatchMapping.SegmentRows, mapping.SegmentGroups.Count > 0);
        using var x = randn(tokens, inF).to(dtype);
        using var y0 = randn(tokens, width).to(dtype);
        using var yReference = y0.clone();
        ILoraKernel reference = new ReferenceLoraKernel();
        reference.Apply(x, yReference, 7, module, mapping);
        using var reference32 = yReference.to(ScalarType.Float32);
        float scale = reference32.abs().max().item<float>() + 1;
        // The kernel as the engine runs it (bf16 rows on the native kernel where the CPU has AVX512-BF16) and its C# rows.
        // And the device kernel (gathers and batched GEMMs), run here on CPU tensors.
        foreach (var fast in new ILoraKernel[] { new CpuLoraKernel(), new CpuLoraKernel(nativeBf16Rows: false), new GatherLoraKernel() })
        {
            using var yFast = y0.clone();
            fast.Apply(x, yFast, 7, module, mapping);
            // bfloat16: the reference rounds the update before adding it, the fast kernels round once after (the gather
            // kernel also rounds its shrink); allow 2 ulps.
            float diff = (reference32 - yFast.to(ScalarType.Float32)).abs().max().item<float>();
            float tolerance = scale * (dtype == ScalarType.Float32 ? 1e-5f : 1.6e-2f);
            Assert.True(diff <= tolerance, $"{fast.Name} (native rows {(fast as CpuLoraKernel)?.NativeBf16Rows}): max diff {diff} above {tolerance}");
            using var changed = (yFast.to(ScalarType.Float32) - y0.to(ScalarType.Float32)).abs().sum(1);
            for (int t = 0; t < tokens; t++)
            {
                bool adapted = t / run % 6 is 1 or 2 or 3 or 5;
                Assert.Equal(adapted, changed[t].item<float>() > 0);
            }
        }
    }

    /// <summary>
    /// The gather kernel computes over every row up to the max rank, so the rows a smaller or absent adapter leaves beyond
    /// its rank must be zero: a slot reloaded with a smaller rank, and a projection the new adapter does not target.
    /// </summary>
    [Fact]
    public void Apply_SlotReloadedWithSmallerRankOrCleared_GatherKernelEqualsReference()
    {
        var random = new SeededRandom(91);
        const int inF = 48, outF = 40, slots = 3, tokens = 9;
        using var module = new LoraModuleArena(0, LoraTarget.Q, slots, 16, inF, outF, ScalarType.Float32, CPU);
        LoraModuleWeights Weights(int rank, float scale) => new(0, LoraTarget.Q, rank, scale,
            Enumerable.Range(0, rank * inF).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray(),
            Enumerable.Range(0, outF * rank).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray());
        var mapping = LoraBatchMapping.ForSequences(Enumerable.Repeat(1, tokens).ToList(),
            Enumerable.Range(0, tokens).Select(t => (IReadOnlyList<AdapterSlotWeight>)(t % 4 == 3 ? [(0, 0.5f), (1, 0.5f)] : [(t % 4, 1f)])).ToList());
        using var x = randn(tokens, inF);
        ILoraKernel gather = new GatherLoraKernel();           // one kernel across the reloads: its stacked copy must follow them
        module.Load(0, Weights(16, 2f));
        module.Load(1, Weights(12, 1f));
        module.Load(2, Weights(14, 1.5f));
        using (var before = zeros(tokens, outF))
            gather.Apply(x, before, 0, module, mapping);
        module.Load(0, Weights(3, 0.5f));   // rank 16 → 3
        module.Clear(1);                     // the new occupant of slot 1 does not adapt this projection
        module.Clear(2);                     // a slot's reload as LoraSlotArena does it: cleared, then rank 14 → 5
        module.Load(2, Weights(5, 1f));

        using var expected = zeros(tokens, outF);
        using var actual = zeros(tokens, outF);
        ((ILoraKernel)new ReferenceLoraKernel()).Apply(x, expected, 0, module, mapping);
        gather.Apply(x, actual, 0, module, mapping);

        Assert.True(actual.allclose(expected, rtol: 1e-5, atol: 1e-5), $"max diff {(actual - expected).abs().max().item<float>()}");
        Assert.Equal(0f, actual[1].abs().sum().item<float>());   // a row of slot 1 alone: nothing applies
    }

    /// <summary>
    /// Past <see cref="GatherLoraKernel.DenseSlots"/> slots and with fewer row entries than slots, the gather kernel takes its
    /// gathered form (per-entry A and Bt of the stacked group) instead of the dense one: the same update.
    /// </summary>
    [Theory]
    [InlineData("Float32")]
    [InlineData("BFloat16")]
    public void Apply_ManySlotsFewRows_GatheredFormEqualsReference(string dtypeName)
    {
        var dtype = Enum.Parse<ScalarType>(dtypeName);
        var random = new SeededRandom(17);
        const int slots = GatherLoraKernel.DenseSlots + 8, inF = 40, tokens = 6;
        var modules = new[] { LoraTarget.Gate, LoraTarget.Up }.Select(t => new LoraModuleArena(0, t, slots, 8, inF, 24 + (int)t, dtype, CPU)).ToArray();
        try
        {
            foreach (var m in modules)
                foreach (int s in new[] { 3, 17, slots - 1 })
                {
                    int rank = 2 + s % 7;
                    m.Load(s, new LoraModuleWeights(0, m.Target, rank, 0.25f * (1 + s % 3),
                        Enumerable.Range(0, rank * inF).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray(),
                        Enumerable.Range(0, m.Out * rank).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray()));
                }

            var mapping = LoraBatchMapping.ForSequences(Enumerable.Repeat(1, tokens).ToList(), [[(3, 1f)], [(17, 0.6f), (slots - 1, 0.4f)], [], [(slots - 1, 1f)], [(5, 1f)], [(3, 0.5f)]]);
            int width = modules.Sum(m => m.Out) + 5;
            using var x = randn(tokens, inF).to(dtype);
            using var y0 = randn(tokens, width).to(dtype);
            using var expected = y0.clone();
            using var actual = y0.clone();
            new ReferenceLoraKernel().Apply(x, expected, 5, modules, mapping);
            new GatherLoraKernel().Apply(x, actual, 5, modules, mapping);

            using var diff = (expected.to(ScalarType.Float32) - actual.to(ScalarType.Float32)).abs().max();
            Assert.True(diff.item<float>() <= (dtype == ScalarType.Float32 ? 1e-5f : 5e-2f), $"max diff {diff.item<float>()}");
            using var rowTwo = (actual[2].to(ScalarType.Float32) - y0[2].to(ScalarType.Float32)).abs().sum();
            Assert.Equal(0f, rowTwo.item<float>());
        }
        finally
        {
            foreach (var m in modules)
                m.Dispose();
        }
    }

    [Theory]
    [InlineData("Float32", 1)]
    [InlineData("BFloat16", 1)]
    [InlineData("Float32", 520)]   // prefill-like runs: the GEMM path per projection
    public void Apply_ProjectionsOfOneInput_SameAsEachProjectionAlone(string dtypeName, int run)
    {
        var dtype = Enum.Parse<ScalarType>(dtypeName);
        var random = new SeededRandom(77);
        const int slots = 5, inF = 96, offset = 5;
        int tokens = Math.Max(300, 6 * run);
        int[] outs = [40, 24, 24];
        var modules = outs.Select((outF, p) => new LoraModuleArena(0, (LoraTarget)p, slots, 16, inF, outF, dtype, CPU)).ToArray();
        try
        {
            for (int p = 0; p < modules.Length; p++)
                for (int s = 0; s < slots - 1; s++)
                {
                    if (p == 2 && s == 1)
                        continue;                      // slot 1 does not adapt the third projection (rank 0)
                    int rank = 1 + (int)(random.NextUInt64() % 16);
                    modules[p].Load(s, new LoraModuleWeights(0, (LoraTarget)p, rank, 0.5f + s,
                        Enumerable.Range(0, rank * inF).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray(),
                        Enumerable.Range(0, outs[p] * rank).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray()));
                }

            var mapping = LoraBatchMapping.ForSequences(Enumerable.Repeat(1, tokens).ToList(),
                Enumerable.Range(0, tokens).Select(t => Row(t / run % 6, slots)).ToList());
            using var x = randn(tokens, inF).to(dtype);
            using var y0 = randn(tokens, offset + outs.Sum() + 3).to(dtype);
            using var together = y0.clone();
            using var alone = y0.clone();
            using var reference = y0.clone();
            ILoraKernel referenceKernel = new ReferenceLoraKernel();
            for (int p = 0, o = offset; p < modules.Length; o += outs[p], p++)
                referenceKernel.Apply(x, reference, o, modules[p], mapping);
            using var reference32 = reference.to(ScalarType.Float32);
            float scale = reference32.abs().max().item<float>() + 1;
            foreach (var kernel in new ILoraKernel[] { new CpuLoraKernel(), new GatherLoraKernel() })
            {
                together.copy_(y0);
                alone.copy_(y0);
                kernel.Apply(x, together, offset, modules, mapping);
                for (int p = 0, o = offset; p < modules.Length; o += outs[p], p++)
                    kernel.Apply(x, alone, o, modules[p], mapping);

                // The CPU kernel runs each projection's rows as it would alone: the same bits. The gather kernel's stacked GEMMs
                // sum over more (zero) rows in another order: the same values within rounding.
                if (kernel is CpuLoraKernel)
                    Assert.True(together.eq(alone).all().item<bool>(), $"{kernel.Name}: the projections together differ from each projection alone");
                else
                    Assert.True(together.to(ScalarType.Float32).allclose(alone.to(ScalarType.Float32), rtol: dtype == ScalarType.Float32 ? 1e-5 : 1.6e-2, atol: scale * (dtype == ScalarType.Float32 ? 1e-6 : 1e-2)),
                        $"{kernel.Name}: the projections together differ from each projection alone beyond rounding");
                float diff = (reference32 - together.to(ScalarType.Float32)).abs().max().item<float>();
                Assert.True(diff <= scale * (dtype == ScalarType.Float32 ? 1e-5f : 1.6e-2f), $"{kernel.Name}: max diff {diff} from the reference kernel");
            }
        }
        finally
        {
            foreach (var m in modules)
                m.Dispose();
        }
    }
}
