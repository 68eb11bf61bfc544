using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Configuration;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// Phi-3 (<c>Phi3ForCausalLM</c>: Phi-3/3.5-mini, Phi-4, Phi-4-mini): q/k/v and gate/up stored stacked in the checkpoint,
/// longrope — a short and a long factor per frequency, the long ones where the served context exceeds the original — and
/// a partial rotary factor, checked against the scalar reference forward on every path.
/// </summary>
public sealed class Phi3ModelTests : IDisposable
{
    private static readonly int[] Prompt = [464, 2068, 786, 2183, 40, 1101, 257, 1332, 13];
    private readonly string _root = TestDirectories.Create("phi3-model");
    private readonly string _dir;

    public Phi3ModelTests()
    {
        _dir = Path.Combine(_root, "phi3");
        SyntheticModelWriter.Write(_dir, new SyntheticModelSpec { Architecture = "Phi3ForCausalLM", Seed = 97 });
    }

    /// <summary>A served context of 64 is beyond the original 32: the long factors.</summary>
    [Fact]
    public void Forward_PrefillThenDecodeWithTheLongFactors_MatchesScalarReference()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 64);
        Assert.True(loaded.Config.FusedCheckpointProjections);
        Assert.Equal(RopeScalingKind.LongRope, loaded.Config.RopeScaling.Kind);
        Assert.Equal(Math.Sqrt(1 + Math.Log(2048.0 / 32) / Math.Log(32)), loaded.Config.RopeScaling.AttentionFactor, 12);
        ArchitectureChecks.PrefillThenDecodeMatchReference(loaded, _dir, Prompt);
    }

    /// <summary>A served context within the original 32 positions takes the short factors, and the two give other logits.</summary>
    [Fact]
    public void Forward_ServedContextWithinTheOriginal_TheShortFactors()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 32);
        using var cache = loaded.Model.CreateKvCache(1, 32);

        using var logits = loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompt, 0)]), cache);

        var row = LlamaModelTests.Rows(logits)[0];
        LlamaModelTests.AssertClose(new ScalarReferenceModel(_dir, servedContext: 32).Forward(Prompt)[^1], row, "short factors");
        Assert.True(new ScalarReferenceModel(_dir, servedContext: 64).Forward(Prompt)[^1].Zip(row, (a, b) => MathF.Abs(a - b)).Max() > 1e-3f, "the factors changed nothing");
    }

    /// <summary>Without rope scaling a Phi-3 checkpoint is the Llama model of the same weights stored apart: the same logits, bit for bit.</summary>
    [Fact]
    public void Forward_StackedCheckpointWithoutRopeScaling_TheLlamaModelsLogits()
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "config.json")))!;
        config["rope_scaling"] = null;
        string phi = Path.Combine(_root, "phi3-plain-rope"), llama = Path.Combine(_root, "llama");
        SyntheticModelWriter.Write(phi, new SyntheticModelSpec { Architecture = "Phi3ForCausalLM", Seed = 97 });
        File.WriteAllText(Path.Combine(phi, "config.json"), config.ToJsonString());
        SyntheticModelWriter.Write(llama, new SyntheticModelSpec { Seed = 97 });
        Assert.Equal(ArchitectureChecks.LastLogits(llama, Prompt), ArchitectureChecks.LastLogits(phi, Prompt));
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_CpuKernelsAndLibtorchOps_SameLogits(ScalarType dtype) => ArchitectureChecks.CpuKernelsAgreeWithLibtorchOps(_dir, Prompt, dtype);

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_TileGridDecodeSteps_FusedPathBitForBitThePerOpPath(ScalarType dtype)
    {
        string dir = TileGridModel.Ensure(Path.Combine(_root, "phi3-tile-grid"), TileGridModel.Spec(seed: 101) with { Architecture = "Phi3ForCausalLM" });
        ArchitectureChecks.FusedDecodeMatchesPerOpPath(dir, dtype);
    }

    /// <summary>
    /// Phi-4-mini's partial rotary (0.75 of each head; its longrope factors cover those dimensions): the reference forward's
    /// logits, prefill then decode, with the scalar rows (halves of 24).
    /// </summary>
    [Fact]
    public void Forward_PartialRotary_MatchesScalarReference()
    {
        string dir = Path.Combine(_root, "phi4-mini-like");
        SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Architecture = "Phi3ForCausalLM", Seed = 127, HeadDim = 64, PartialRotaryFactor = 0.75 });
        using var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64);
        Assert.Equal(48, loaded.Config.RotaryDim);
        ArchitectureChecks.PrefillThenDecodeMatchReference(loaded, dir, Prompt);
    }

    /// <summary>Partial rotary with vector-wide halves (32 of 64 dimensions rotated): the CPU kernels as libtorch's ops, the fused path as the per-op one.</summary>
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_PartialRotaryOnEveryPath_SameLogits(ScalarType dtype)
    {
        string dir = TileGridModel.Ensure(Path.Combine(_root, "partial-tile-grid"), TileGridModel.Spec(seed: 131) with { Architecture = "Phi3ForCausalLM", HeadDim = 64, PartialRotaryFactor = 0.5 });
        ArchitectureChecks.CpuKernelsAgreeWithLibtorchOps(dir, Prompt, dtype);
        ArchitectureChecks.FusedDecodeMatchesPerOpPath(dir, dtype);
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
