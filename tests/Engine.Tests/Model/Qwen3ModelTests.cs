using Serving.Authoring.Synthetic;
using Serving.Engine.Kernels;
using Serving.Engine.Model;
using Serving.Engine.Runtime;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// Qwen3 (<c>Qwen3ForCausalLM</c>): q and k heads RMSNormed before RoPE, no q/k/v biases, and heads · head_dim wider than
/// the hidden size (as Qwen3-0.6B's 16 heads of 128 over 1,024) — checked against the scalar reference forward, and the
/// CPU kernels' head norm against libtorch's ops.
/// </summary>
public sealed class Qwen3ModelTests : IDisposable
{
    private static readonly int[] Prompt = [464, 2068, 7586, 21831, 18045, 625, 262];
    private readonly string _root = TestDirectories.Create("qwen3-model");
    private readonly string _dir;

    public Qwen3ModelTests()
    {
        _dir = Path.Combine(_root, "qwen3");
        SyntheticModelWriter.Write(_dir, new SyntheticModelSpec { Architecture = "Qwen3ForCausalLM", HeadDim = 32, Seed = 41, TieWordEmbeddings = true });
    }

    [Fact]
    public void Forward_PrefillThenDecode_MatchesScalarReference()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 64);
        Assert.True(loaded.Config.QkNorm);
        Assert.Equal(4 * 32, loaded.Config.NumHeads * loaded.Config.HeadDim);
        Assert.Null(loaded.Model.Weights.Layers[0].QkvBias);
        Assert.NotNull(loaded.Model.Weights.Layers[0].KNorm);
        ArchitectureChecks.PrefillThenDecodeMatchReference(loaded, _dir, Prompt);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_CpuKernelsAndLibtorchOps_SameLogits(ScalarType dtype) => ArchitectureChecks.CpuKernelsAgreeWithLibtorchOps(_dir, Prompt, dtype);

    [Fact]
    public void Apply_QkvRows_EachHeadAsNormedAlone()
    {
        const int heads = 3, kvHeads = 2, d = 64;
        using var qkv = randn(5, (heads + 2 * kvHeads) * d);
        using var qw = rand(d).Plus(0.5);
        using var kw = rand(d).Plus(0.5);
        using var expected = qkv.clone();
        using (var view = expected.view(5, heads + 2 * kvHeads, d))
        {
            foreach (var (from, count, weight) in new[] { (0, heads, qw), (heads, kvHeads, kw) })
            {
                using var part = view.narrow(1, from, count);
                part.copy_(part * rsqrt(part.Squared().mean([-1L], keepdim: true).Plus(1e-6)) * weight);
            }
        }

        HeadRmsNormKernel.Apply(qkv, heads, kvHeads, d, qw, kw, 1e-6f);

        Assert.True(qkv.allclose(expected, rtol: 1e-5, atol: 1e-5));
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
