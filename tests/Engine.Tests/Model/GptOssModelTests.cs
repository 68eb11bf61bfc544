using Serving.Authoring.Synthetic;
using Serving.Contracts.Configuration;
using Serving.Engine.Checkpoints;
using Serving.Engine.Model;
using Serving.Engine.Quantization;
using Serving.Engine.Runtime;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// gpt-oss (<c>GptOssForCausalLM</c>): biased attention with a sink logit per head, sliding layers (window 4) between
/// whole-context ones, YaRN without truncation, and a mixture of biased experts routed by the softmax over the top K logits
/// through a clamped SwiGLU — against the scalar reference forward, from stacked float experts and from MXFP4 blocks, on the
/// CPU kernels, on libtorch's ops and on the fused decode path, with an adapter on its attention.
/// </summary>
public sealed class GptOssModelTests : IDisposable
{
    private static readonly int[] Prompt = [464, 2068, 786, 2183, 40, 1101, 257, 1332, 13];
    private readonly string _root = TestDirectories.Create("gpt-oss-model");

    private string Model(bool mxfp4 = false)
    {
        string dir = Path.Combine(_root, mxfp4 ? "mxfp4" : "float");
        if (!Directory.Exists(dir))
            SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Architecture = "GptOssForCausalLM", Seed = 131, ExpertIntermediate = 96, Mxfp4Experts = mxfp4 });
        return dir;
    }

    /// <summary>From float experts, from MXFP4 ones dequantized at load, and from MXFP4 ones held so (<c>--quantization mxfp4</c>).</summary>
    [Theory]
    [InlineData(false, WeightQuantization.None)]
    [InlineData(true, WeightQuantization.None)]
    [InlineData(true, WeightQuantization.Mxfp4)]
    public void Forward_PrefillThenDecode_MatchesScalarReference(bool mxfp4, WeightQuantization quantization)
    {
        using var loaded = LoadedModel.Load(Model(mxfp4), ScalarType.Float32, CPU, 64, quantization: quantization);
        Assert.Equal(quantization == WeightQuantization.Mxfp4, loaded.Model.Weights.Layers[0].Experts![0].Down.IsMxfp4);
        var c = loaded.Config;
        Assert.Equal((4, 2, true, true), (c.Experts!.Experts, c.Experts.TopK, c.AttentionSinks, c.AttentionOutputBias));
        Assert.Equal((MlpActivation.ClampedSwiglu, 1.5, 4, false), (c.Activation, c.SwigluLimit, c.SlidingWindow, c.RopeScaling.Truncate));
        Assert.Equal([1], c.FullAttentionLayers);
        Assert.NotNull(loaded.Model.Weights.Layers[0].Experts![3].DownBias);
        ArchitectureChecks.PrefillThenDecodeMatchReference(loaded, Model(mxfp4), Prompt);
    }

    /// <summary>The sinks matter: without them (set to −∞ in the checkpoint's place) the logits move.</summary>
    [Fact]
    public void Forward_SinksRemoved_LogitsChange()
    {
        using var loaded = LoadedModel.Load(Model(), ScalarType.Float32, CPU, 64);
        var with = ArchitectureChecks.LastLogits(Model(), Prompt);
        foreach (var layer in loaded.Model.Weights.Layers)
            layer.Sinks!.FillWith(double.NegativeInfinity);
        using var cache = loaded.Model.CreateKvCache(1, 64);
        using var logits = loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompt, 0)]), cache);

        float moved = with.Zip(LlamaModelTests.Rows(logits)[0], (a, b) => MathF.Abs(a - b)).Max();

        Assert.True(moved > 1e-2f, $"the sinks moved no logit (max change {moved})");
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_CpuKernelsAndLibtorchOps_SameLogits(ScalarType dtype) =>
        ArchitectureChecks.CpuKernelsAgreeWithLibtorchOps(Model(), Prompt, dtype);

    [Fact]
    public void Forward_ChunkedPrefillOverTheWindow_MatchesScalarReference() =>
        ArchitectureChecks.ChunkedPrefillMatchesReference(Model(), Prompt, [3, 4, 2]);

    [Fact]
    public void Forward_AttentionAdapter_MatchesScalarReference() =>
        ArchitectureChecks.AdapterMatchesReference(Model(), Prompt);

    /// <summary>Decode steps of an adapted row beside a base one: the fused CPU path (sinks in its decode kernel, experts on raw memory) gives the per-op path's bits.</summary>
    [Theory]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.BFloat16, false)]
    [InlineData(ScalarType.BFloat16, true)]
    [InlineData(ScalarType.Float32, true)]
    public void Forward_TileGridDecodeSteps_FusedPathBitForBitThePerOpPath(ScalarType dtype, bool mxfp4)
    {
        string dir = TileGridModel.Ensure(Path.Combine(_root, $"tile-grid-{mxfp4}"), TileGridModel.Spec(seed: 137) with { Architecture = "GptOssForCausalLM", Mxfp4Experts = mxfp4 });
        ArchitectureChecks.FusedDecodeMatchesPerOpPath(dir, dtype, mxfp4 ? WeightQuantization.Mxfp4 : WeightQuantization.None);
    }

    /// <summary>MXFP4 experts load as their dequantized values: each an E2M1 value (±{0, 0.5, 1, 1.5, 2, 3, 4, 6}) times a power of two.</summary>
    [Fact]
    public void Load_Mxfp4Experts_TheirDequantizedValues()
    {
        using var loaded = LoadedModel.Load(Model(mxfp4: true), ScalarType.Float32, CPU, 64, quantization: WeightQuantization.Mxfp4);
        var expert = loaded.Model.Weights.Layers[1].Experts![2];
        using var gateUp = expert.GateUp.RowSlice(0, expert.GateUp.Outputs);
        var values = gateUp.data<float>().ToArray();

        Assert.True(expert.GateUp.IsMxfp4 && expert.Down.IsMxfp4, "MXFP4 experts of a float32 CPU model stay MXFP4 under --quantization mxfp4");
        Assert.Equal(expert.GateUp.Outputs * expert.GateUp.Inputs * 17 / 32, expert.GateUp.Bytes);
        Assert.All(values, v => Assert.Contains(MathF.Abs(v) / MathF.Pow(2, MathF.Floor(MathF.Log2(MathF.Max(MathF.Abs(v), 1e-30f)))), new[] { 0f, 1f, 1.5f }));
    }

    /// <summary><c>--quantization mxfp4</c> on a checkpoint with no MXFP4 weights stops the load, naming why.</summary>
    [Fact]
    public void Load_Mxfp4OnAFloatCheckpoint_RefusedNamingIt()
    {
        var error = Assert.Throws<ModelLoadException>(() => LoadedModel.Load(Model(), ScalarType.Float32, CPU, 64, quantization: WeightQuantization.Mxfp4));

        Assert.Contains("has none", error.Message);
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
