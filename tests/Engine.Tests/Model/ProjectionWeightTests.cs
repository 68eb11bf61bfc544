using Serving.Authoring.Synthetic;
using Serving.Engine.Kernels;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// bf16 models whose projections run on AMX-packed weights against the same models on libtorch's GEMMs: both are compared
/// by their distance from the float32 model, since a rounding tie falling the other way in one layer moves what follows.
/// </summary>
public sealed class ProjectionWeightTests : IDisposable
{
    private static readonly int[] PromptA = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13];
    private static readonly int[] PromptB = [40, 1101, 257, 1332];
    private readonly string _root = TestDirectories.Create("projection-weights");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]    // tied embeddings: token lookups read the packed lm_head
    public void Forward_Bf16PackedProjections_AsAccurateAsLibtorchGemms(bool tied)
    {
        string dir = Path.Combine(_root, tied ? "tied" : "untied");
        SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Preset = ModelPreset.Tiny, Seed = 11, TieWordEmbeddings = tied });
        using var exact = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64);
        using var packed = LoadedModel.Load(dir, ScalarType.BFloat16, CPU, 64, packForAmx: true);
        using var plain = LoadedModel.Load(dir, ScalarType.BFloat16, CPU, 64, packForAmx: false);

        var weights = packed.Model.Weights;
        Assert.All(weights.Layers.SelectMany(l => l.Projections).Append(weights.LmHead), p => Assert.Equal(AmxNative.IsAvailable, p.IsPacked));
        Assert.Equal(AmxNative.IsAvailable && tied, weights.Embed.IsPacked);
        Assert.All(plain.Model.Weights.Layers.SelectMany(l => l.Projections), p => Assert.False(p.IsPacked));

        var reference = Run(exact.Model);
        float Distance(float[][] rows) => rows.Select((r, i) => r.Zip(reference[i], (x, y) => MathF.Abs(x - y)).Max()).Max();
        float packedError = Distance(Run(packed.Model)), plainError = Distance(Run(plain.Model));
        Assert.True(packedError <= 1.5f * plainError + 1e-3f, $"max |bf16 − f32| logit: AMX-packed {packedError}, libtorch {plainError}");
    }

    [Fact]
    public void Load_Bf16WithPacking_HoldsNoMoreBytesThanThePlainWeights()
    {
        string dir = Path.Combine(_root, "bytes");
        SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Preset = ModelPreset.Tiny, Seed = 5 });
        using var packed = LoadedModel.Load(dir, ScalarType.BFloat16, CPU, 64, packForAmx: true);
        using var plain = LoadedModel.Load(dir, ScalarType.BFloat16, CPU, 64, packForAmx: false);

        // Padding to the 32 × 32 tile grid is the only difference (the tiny preset's 176 and 50257 are off the grid).
        double ratio = (double)packed.Model.Weights.TotalBytes / plain.Model.Weights.TotalBytes;
        Assert.InRange(ratio, 1.0, AmxNative.IsAvailable ? 1.2 : 1.0);
    }

    /// <summary>Prefill of two prompts, then a decode step for both: every row's float32 logits.</summary>
    private static float[][] Run(LlamaModel model)
    {
        using var cache = model.CreateKvCache(2, 64);
        var a = cache.Partition(0);
        var b = cache.Partition(1);
        var rows = new List<float[]>();
        using (var prefill = model.Forward(ForwardBatch.Create([(a, PromptA, 0), (b, PromptB, 0)]), cache, LogitsSelection.AllTokens))
            rows.AddRange(LlamaModelTests.Rows(prefill));
        using (var decode = model.Forward(ForwardBatch.Create([(a, new[] { 7 }, PromptA.Length), (b, new[] { 8 }, PromptB.Length)]), cache))
            rows.AddRange(LlamaModelTests.Rows(decode));
        return rows.ToArray();
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
