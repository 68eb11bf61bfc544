using Serving.Authoring.Synthetic;
using Serving.Contracts.Configuration;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// Gemma 3 (<c>Gemma3ForCausalLM</c>): norms scaling by 1 + w, the attention and MLP outputs normed before their residual
/// adds, GeGLU, q/k head norms, embeddings × √hidden, a query scale from <c>query_pre_attn_scalar</c>, and sliding layers
/// (window 4) between whole-context ones, each kind with its own RoPE base (the whole-context layers' linearly scaled) —
/// checked against the scalar reference forward, with and without adapters, on the CPU kernels, libtorch's ops and the
/// fused decode path.
/// </summary>
public sealed class Gemma3ModelTests : IDisposable
{
    private static readonly int[] Prompt = [464, 2068, 786, 2183, 40, 1101, 257, 1332, 13];
    private readonly string _root = TestDirectories.Create("gemma3-model");
    private readonly string _dir;

    public Gemma3ModelTests()
    {
        _dir = Path.Combine(_root, "gemma3");
        SyntheticModelWriter.Write(_dir, new SyntheticModelSpec { Architecture = "Gemma3ForCausalLM", HeadDim = 32, Seed = 67, TieWordEmbeddings = true });
    }

    [Fact]
    public void Load_Gemma3Config_EveryGemmaPartOn()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 64);
        var c = loaded.Config;
        Assert.Equal(MlpActivation.GeluTanh, c.Activation);
        Assert.True(c.NormScalesByOnePlusWeight && c.SandwichNorms && c.QkNorm && c.MixesWindows);
        Assert.Equal([1], c.FullAttentionLayers);
        Assert.Equal(4, c.WindowOf(0));
        Assert.Null(c.WindowOf(1));
        Assert.Equal(Math.Sqrt(64), c.EmbeddingMultiplier);
        Assert.Equal(1 / Math.Sqrt(40), c.AttentionMultiplier);
        Assert.NotNull(loaded.Model.Weights.Layers[0].MlpOutputNorm);
    }

    /// <summary>
    /// Gemma 3 4B+ (and their fine-tunes) ship as Gemma3ForConditionalGeneration: the text fields nested in text_config, the
    /// language model's tensors under either prefix beside a vision tower. Its language model is the same model.
    /// </summary>
    [Theory]
    [InlineData("language_model.model.")]
    [InlineData("model.language_model.")]
    public void Load_MultimodalCheckpoint_TheLanguageModelsLogits(string prefix)
    {
        string dir = Path.Combine(_root, "multimodal-" + prefix.Replace('.', '-'));
        SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Architecture = "Gemma3ForCausalLM", HeadDim = 32, Seed = 67, TieWordEmbeddings = true, MultimodalPrefix = prefix });
        using (var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64))
        {
            Assert.True(loaded.Config.IsLanguageModelOfMultimodal);
            Assert.False(loaded.EmbeddingOnly);
            Assert.Equal([1], loaded.Config.FullAttentionLayers);
        }

        Assert.Equal(ArchitectureChecks.LastLogits(_dir, Prompt), ArchitectureChecks.LastLogits(dir, Prompt));
    }

    [Fact]
    public void Forward_PrefillThenDecode_MatchesScalarReference()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 64);
        ArchitectureChecks.PrefillThenDecodeMatchReference(loaded, _dir, Prompt);
    }

    /// <summary>Chunks over a cached prefix longer than the sliding layers' window: the reference's logits at every position.</summary>
    [Fact]
    public void Forward_ChunkedPrefillOverBothKindsOfLayer_MatchesScalarReference() => ArchitectureChecks.ChunkedPrefillMatchesReference(_dir, Prompt, [3, 4, 2]);

    [Fact]
    public void Forward_AdaptersOnEveryProjection_MatchTheReference() => ArchitectureChecks.AdapterMatchesReference(_dir, Prompt);

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_CpuKernelsAndLibtorchOps_SameLogits(ScalarType dtype) => ArchitectureChecks.CpuKernelsAgreeWithLibtorchOps(_dir, Prompt, dtype);

    /// <summary>Decode steps past the window on the fused CPU path, an adapted row beside a base one: the per-op path's bits.</summary>
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_TileGridDecodeSteps_FusedPathBitForBitThePerOpPath(ScalarType dtype)
    {
        string dir = TileGridModel.Ensure(Path.Combine(_root, "gemma3-tile-grid"), TileGridModel.Spec(seed: 71) with { Architecture = "Gemma3ForCausalLM", TieWordEmbeddings = true });
        ArchitectureChecks.FusedDecodeMatchesPerOpPath(dir, dtype);
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
