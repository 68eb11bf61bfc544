using Serving.Authoring.Synthetic;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// IBM Granite (<c>GraniteForCausalLM</c>): Llama with four multipliers — embeddings ×12, attention scores × 1/head_dim
/// instead of 1/√head_dim, each attention and MLP output (adapters included) × 0.22 before its residual add, logits ÷ 8 —
/// checked against the scalar reference forward, with and without adapters, on the CPU kernels and on libtorch's ops.
/// </summary>
public sealed class GraniteModelTests : IDisposable
{
    private static readonly int[] Prompt = [464, 2068, 7586, 21831, 18045, 625, 262];
    private readonly string _root = TestDirectories.Create("granite-model");
    private readonly string _dir;

    public GraniteModelTests()
    {
        _dir = Path.Combine(_root, "granite");
        SyntheticModelWriter.Write(_dir, new SyntheticModelSpec { Architecture = "GraniteForCausalLM", Seed = 59, TieWordEmbeddings = true });
    }

    [Fact]
    public void Forward_PrefillThenDecode_MatchesScalarReference()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 64);
        Assert.True(loaded.Config.HasMultipliers);
        ArchitectureChecks.PrefillThenDecodeMatchReference(loaded, _dir, Prompt);
    }

    [Fact]
    public void Forward_AdaptersOnEveryProjection_MatchTheReferenceWithTheResidualMultiplierOverThem() => ArchitectureChecks.AdapterMatchesReference(_dir, Prompt);

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_CpuKernelsAndLibtorchOps_SameLogits(ScalarType dtype) => ArchitectureChecks.CpuKernelsAgreeWithLibtorchOps(_dir, Prompt, dtype);

    /// <summary>The tile-grid shape, whose decode steps take the fused CPU path where this CPU has its kernels: the same bits as the per-op path.</summary>
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_TileGridDecodeSteps_FusedPathBitForBitThePerOpPath(ScalarType dtype)
    {
        string dir = TileGridModel.Ensure(Path.Combine(_root, "granite-tile-grid"), TileGridModel.Spec(seed: 61) with { Architecture = "GraniteForCausalLM" });
        ArchitectureChecks.FusedDecodeMatchesPerOpPath(dir, dtype);
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
