using Serving.Authoring.Synthetic;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// Granite MoE (<c>GraniteMoeForCausalLM</c>): Granite's multipliers over a mixture of experts held as parallel-expert
/// tensors and routed by the softmax of the top K logits — its logits the scalar reference's for the Mixtral-named twin of
/// the same weights and multipliers, prefilling and decoding, and on the CPU kernels as on libtorch's ops.
/// </summary>
public sealed class GraniteMoeModelTests : IDisposable
{
    private static readonly int[] Prompt = [464, 2068, 786, 2183, 40, 1101, 257, 1332, 13];
    private static readonly SyntheticModelSpec Spec = new() { Seed = 41, Experts = 4 };
    private readonly string _root = TestDirectories.Create("granitemoe-model");
    private readonly string _dir, _twin;

    public GraniteMoeModelTests()
    {
        _dir = Path.Combine(_root, "granitemoe");
        _twin = Path.Combine(_root, "mixtral-twin");
        GraniteMoeCheckpoint.Write(_dir, Spec);
        GraniteMoeCheckpoint.Write(_twin, Spec, mixtralTwin: true);
    }

    [Fact]
    public void Load_GraniteMoeConfig_ParallelExpertsAndGranitesMultipliers()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 64);
        var c = loaded.Config;
        Assert.True(c.Experts is { ParallelExperts: true, SoftmaxOverTopK: true, Experts: 4 });
        Assert.Equal((12.0, 0.22, 6.0), (c.EmbeddingMultiplier, c.ResidualMultiplier, c.LogitsScaling));
        Assert.Equal(4, loaded.Model.Weights.Layers[0].Experts!.Count);
    }

    [Fact]
    public void Forward_PrefillThenDecode_TheMixtralTwinsReferenceLogits()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 64);
        ArchitectureChecks.PrefillThenDecodeMatchReference(loaded, _twin, Prompt);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_CpuKernelsAndLibtorchOps_SameLogits(ScalarType dtype) => ArchitectureChecks.CpuKernelsAgreeWithLibtorchOps(_dir, Prompt, dtype);

    public void Dispose() => TestDirectories.Delete(_root);
}
