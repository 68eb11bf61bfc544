using Serving.Authoring.Synthetic;
using Serving.Contracts.Configuration;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// OLMo 2 and OLMo 3 (<c>Olmo2ForCausalLM</c>, <c>Olmo3ForCausalLM</c>): no norm before attention or the MLP, their outputs
/// RMSNormed before the residual adds, q and k normed across all heads; OLMo 3 also slides (window 4, every fourth layer and
/// the last whole-context) with YaRN in its whole-context layers only — checked against the scalar reference forward, with
/// and without adapters, on the CPU kernels, libtorch's ops and the fused decode path, and in a grouped KV cache.
/// </summary>
public sealed class OlmoModelTests : IDisposable
{
    private static readonly int[] Prompt = [464, 2068, 786, 2183, 40, 1101, 257, 1332, 13, 198, 77];
    private readonly string _root = TestDirectories.Create("olmo-model");

    private string Model(string architecture, ulong seed = 83)
    {
        string dir = Path.Combine(_root, architecture);
        if (!Directory.Exists(dir))
            SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Architecture = architecture, HeadDim = 32, Seed = seed });
        return dir;
    }

    [Fact]
    public void Load_Olmo2_PostNormsAndQkNormsAcrossHeads()
    {
        using var loaded = LoadedModel.Load(Model("Olmo2ForCausalLM"), ScalarType.Float32, CPU, 64);
        var c = loaded.Config;
        Assert.True(c.PostNormsOnly && c.QkNormAcrossHeads && c.QkNorm);
        Assert.Null(c.SlidingWindow);
        var layer = loaded.Model.Weights.Layers[0];
        Assert.Null(layer.InputNorm);
        Assert.Null(layer.PostAttentionNorm);
        Assert.NotNull(layer.AttentionOutputNorm);
        Assert.NotNull(layer.MlpOutputNorm);
        Assert.Equal([c.NumHeads * c.HeadDim], layer.QNorm!.shape);
        Assert.Equal([c.NumKvHeads * c.HeadDim], layer.KNorm!.shape);
    }

    [Fact]
    public void Load_Olmo3_SlidingLayersUnscaledRopeAndKvGroups()
    {
        using var loaded = LoadedModel.Load(Model("Olmo3ForCausalLM"), ScalarType.Float32, CPU, 64);
        var c = loaded.Config;
        Assert.Equal(4, c.WindowOf(0));
        Assert.Null(c.WindowOf(1));
        Assert.Equal(500000.0, c.LocalRopeTheta);
        Assert.Equal(RopeScalingKind.Yarn, c.RopeScaling.Kind);
        var groups = KvCacheGroups.For(c);
        Assert.Equal([null, 4], groups.Windows);
    }

    [Theory]
    [InlineData("Olmo2ForCausalLM")]
    [InlineData("Olmo3ForCausalLM")]
    public void Forward_PrefillThenDecode_MatchesScalarReference(string architecture)
    {
        using var loaded = LoadedModel.Load(Model(architecture), ScalarType.Float32, CPU, 64);
        ArchitectureChecks.PrefillThenDecodeMatchReference(loaded, Model(architecture), Prompt);
    }

    /// <summary>Chunks over a cached prefix longer than OLMo 3's window, and across YaRN's original context in its whole-context layer.</summary>
    [Theory]
    [InlineData("Olmo2ForCausalLM")]
    [InlineData("Olmo3ForCausalLM")]
    public void Forward_ChunkedPrefill_MatchesScalarReference(string architecture) =>
        ArchitectureChecks.ChunkedPrefillMatchesReference(Model(architecture), Prompt, [3, 5, 3]);

    [Theory]
    [InlineData("Olmo2ForCausalLM")]
    [InlineData("Olmo3ForCausalLM")]
    public void Forward_AdaptersOnEveryProjection_MatchTheReference(string architecture) => ArchitectureChecks.AdapterMatchesReference(Model(architecture), Prompt);

    [Theory]
    [InlineData("Olmo2ForCausalLM", ScalarType.Float32)]
    [InlineData("Olmo2ForCausalLM", ScalarType.BFloat16)]
    [InlineData("Olmo3ForCausalLM", ScalarType.BFloat16)]
    public void Forward_CpuKernelsAndLibtorchOps_SameLogits(string architecture, ScalarType dtype) =>
        ArchitectureChecks.CpuKernelsAgreeWithLibtorchOps(Model(architecture), Prompt, dtype);

    /// <summary>Decode steps of an adapted row beside a base one on the fused CPU path (its residual adds without a norm, q/k normed across heads): the per-op path's bits.</summary>
    [Theory]
    [InlineData("Olmo2ForCausalLM", ScalarType.Float32)]
    [InlineData("Olmo2ForCausalLM", ScalarType.BFloat16)]
    [InlineData("Olmo3ForCausalLM", ScalarType.BFloat16)]
    public void Forward_TileGridDecodeSteps_FusedPathBitForBitThePerOpPath(string architecture, ScalarType dtype)
    {
        string dir = TileGridModel.Ensure(Path.Combine(_root, $"tile-grid-{architecture}"), TileGridModel.Spec(seed: 89) with { Architecture = architecture });
        ArchitectureChecks.FusedDecodeMatchesPerOpPath(dir, dtype);
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
