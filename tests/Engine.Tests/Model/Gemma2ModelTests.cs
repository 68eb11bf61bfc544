using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// Gemma 2 (<c>Gemma2ForCausalLM</c>): Gemma's norms, GeGLU and scales, every other layer sliding, and soft caps on the
/// attention scores and on the logits — checked against the scalar reference forward on every path, in prefill, chunks
/// and decode steps past the window.
/// </summary>
public sealed class Gemma2ModelTests : IDisposable
{
    private static readonly int[] Prompt = [464, 2068, 786, 2183, 40, 1101, 257, 1332, 13];
    private readonly string _root = TestDirectories.Create("gemma2-model");
    private readonly string _dir;

    public Gemma2ModelTests()
    {
        _dir = Path.Combine(_root, "gemma2");
        SyntheticModelWriter.Write(_dir, new SyntheticModelSpec { Architecture = "Gemma2ForCausalLM", HeadDim = 32, Seed = 83, TieWordEmbeddings = true });
    }

    [Fact]
    public void Forward_PrefillThenDecode_MatchesScalarReference()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 64);
        Assert.Equal(1.5, loaded.Config.AttentionSoftcap);
        Assert.Equal(5.0, loaded.Config.FinalLogitSoftcap);
        Assert.Equal([1], loaded.Config.FullAttentionLayers);     // layer 0 slides, layer 1 does not, as HF's Gemma 2 alternates
        Assert.Null(loaded.Model.Weights.Layers[0].QNorm);
        ArchitectureChecks.PrefillThenDecodeMatchReference(loaded, _dir, Prompt);
    }

    /// <summary>The caps bend this model's values: without them the reference gives other logits, and none beyond the logits' cap.</summary>
    [Fact]
    public void Reference_WithoutTheSoftCaps_OtherLogits()
    {
        string uncapped = Path.Combine(_root, "uncapped");
        SyntheticModelWriter.Write(uncapped, new SyntheticModelSpec { Architecture = "Gemma2ForCausalLM", HeadDim = 32, Seed = 83, TieWordEmbeddings = true });
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(uncapped, "config.json")))!;
        config["attn_logit_softcapping"] = null;
        config["final_logit_softcapping"] = null;
        File.WriteAllText(Path.Combine(uncapped, "config.json"), config.ToJsonString());

        var capped = new ScalarReferenceModel(_dir).Forward(Prompt)[^1];
        var plain = new ScalarReferenceModel(uncapped).Forward(Prompt)[^1];

        Assert.True(capped.Zip(plain, (a, b) => MathF.Abs(a - b)).Max() > 0.1f, "the caps changed nothing");
        Assert.All(capped, z => Assert.InRange(z, -5f, 5f));
    }

    [Fact]
    public void Forward_ChunkedPrefill_MatchesScalarReference() => ArchitectureChecks.ChunkedPrefillMatchesReference(_dir, Prompt, [2, 5, 2]);

    [Fact]
    public void Forward_AdaptersOnEveryProjection_MatchTheReference() => ArchitectureChecks.AdapterMatchesReference(_dir, Prompt);

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_CpuKernelsAndLibtorchOps_SameLogits(ScalarType dtype) => ArchitectureChecks.CpuKernelsAgreeWithLibtorchOps(_dir, Prompt, dtype);

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_TileGridDecodeSteps_FusedPathBitForBitThePerOpPath(ScalarType dtype)
    {
        string dir = TileGridModel.Ensure(Path.Combine(_root, "gemma2-tile-grid"), TileGridModel.Spec(seed: 89) with { Architecture = "Gemma2ForCausalLM", TieWordEmbeddings = true });
        ArchitectureChecks.FusedDecodeMatchesPerOpPath(dir, dtype);
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
