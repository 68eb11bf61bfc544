using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Quantization;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// Mixture-of-experts models — Mixtral (4 experts, 2 per token, renormalised), Qwen3-MoE (q/k head norms, a dense first
/// layer, experts of their own intermediate size) and Qwen2-MoE (q/k/v biases, a shared expert under a sigmoid gate) — against the scalar reference forward, on the CPU kernels and on
/// libtorch's ops, int8, and with an adapter on the attention, the only part their adapters may adapt.
/// </summary>
public sealed class MixtureOfExpertsModelTests : IDisposable
{
    private static readonly int[] Prompt = [464, 2068, 786, 2183, 40, 1101, 257, 1332, 13];
    private readonly string _root = TestDirectories.Create("moe-model");

    private string Model(string architecture)
    {
        string dir = Path.Combine(_root, architecture);
        if (!Directory.Exists(dir))
            SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Architecture = architecture, Seed = 103 });
        return dir;
    }

    [Theory]
    [InlineData("MixtralForCausalLM")]
    [InlineData("Qwen3MoeForCausalLM")]
    [InlineData("Qwen2MoeForCausalLM")]
    public void Forward_PrefillThenDecode_MatchesScalarReference(string architecture)
    {
        using var loaded = LoadedModel.Load(Model(architecture), ScalarType.Float32, CPU, 64);
        Assert.Equal((4, 2), (loaded.Config.Experts!.Experts, loaded.Config.Experts.TopK));
        Assert.Equal(4, loaded.Model.Weights.Layers[1].Experts!.Count);
        Assert.Equal(architecture != "MixtralForCausalLM", loaded.Model.Weights.Layers[0].Experts is null);
        Assert.Equal(architecture == "Qwen2MoeForCausalLM", loaded.Model.Weights.Layers[1].SharedExpert is not null);
        ArchitectureChecks.PrefillThenDecodeMatchReference(loaded, Model(architecture), Prompt);
    }

    [Theory]
    [InlineData("MixtralForCausalLM", ScalarType.Float32)]
    [InlineData("MixtralForCausalLM", ScalarType.BFloat16)]
    [InlineData("Qwen3MoeForCausalLM", ScalarType.BFloat16)]
    [InlineData("Qwen2MoeForCausalLM", ScalarType.BFloat16)]
    public void Forward_CpuKernelsAndLibtorchOps_SameLogits(string architecture, ScalarType dtype) =>
        ArchitectureChecks.CpuKernelsAgreeWithLibtorchOps(Model(architecture), Prompt, dtype);

    /// <summary>
    /// Decode steps of an adapted row beside a base one on the fused CPU path (its experts on raw memory, routed on the host as
    /// the per-op path routes): the per-op path's bits, and in float32 the reference's logits.
    /// </summary>
    [Theory]
    [InlineData("MixtralForCausalLM", ScalarType.Float32)]
    [InlineData("MixtralForCausalLM", ScalarType.BFloat16)]
    [InlineData("Qwen3MoeForCausalLM", ScalarType.BFloat16)]
    [InlineData("Qwen2MoeForCausalLM", ScalarType.BFloat16)]
    [InlineData("Qwen2MoeForCausalLM", ScalarType.Float32)]
    public void Forward_TileGridDecodeSteps_FusedPathBitForBitThePerOpPath(string architecture, ScalarType dtype)
    {
        string dir = TileGridModel.Ensure(Path.Combine(_root, architecture + "-tile-grid"), TileGridModel.Spec(seed: 113) with { Architecture = architecture });
        ArchitectureChecks.FusedDecodeMatchesPerOpPath(dir, dtype);
    }

    /// <summary>Every expert's projections quantized as a dense model's are: the reference int8 model's logits.</summary>
    [Fact]
    public void Forward_Int8_EqualsTheReferenceInt8Model()
    {
        string dir = Model("MixtralForCausalLM");
        using var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64, quantization: WeightQuantization.Int8);
        using var cache = loaded.Model.CreateKvCache(1, 64);

        using var logits = loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompt, 0)]), cache);

        LlamaModelTests.AssertClose(new ScalarReferenceModel(dir, int8: true).Forward(Prompt)[^1], LlamaModelTests.Rows(logits)[0], "int8", 2e-3f);
    }

    /// <summary>An adapted row beside a base row in one batch: each as the reference computes it, the adapter on q/k/v/o.</summary>
    [Fact]
    public void Forward_AttentionAdapterBesideTheBase_EachRowAsTheReference()
    {
        string dir = Model("Qwen3MoeForCausalLM");
        using var loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64);
        var adapter = RandomAdapters.Create(loaded.Config, "attention", 8, [LoraTarget.Q, LoraTarget.K, LoraTarget.V, LoraTarget.O], 7, scale: 2.0f);
        loaded.Model.EnableAdapters(slots: 1, maxRank: 8).Load(0, adapter);
        using var cache = loaded.Model.CreateKvCache(2, 64);
        IReadOnlyList<AdapterSlotWeight>[] rows = [[(0, 1f)], []];

        using var logits = loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompt, 0), (cache.Partition(1), Prompt, 0)]), cache,
            LogitsSelection.LastTokenPerSequence, LoraBatchMapping.ForSequences([Prompt.Length, Prompt.Length], rows));

        var result = LlamaModelTests.Rows(logits);
        LlamaModelTests.AssertClose(new ScalarReferenceModel(dir, adapters: [(adapter, 1f)]).Forward(Prompt)[^1], result[0], "adapted row");
        LlamaModelTests.AssertClose(new ScalarReferenceModel(dir).Forward(Prompt)[^1], result[1], "base row");
    }

    /// <summary>An expert's LoRA is not served: an adapter on the MLP does not load, naming the projection; the arena holds attention slots only.</summary>
    [Fact]
    public void EnableAdapters_MlpAdapter_RefusedNamingTheProjection()
    {
        using var loaded = LoadedModel.Load(Model("MixtralForCausalLM"), ScalarType.Float32, CPU, 64);
        var arena = loaded.Model.EnableAdapters(slots: 1, maxRank: 8);
        var mlp = RandomAdapters.Create(loaded.Config, "mlp", 8, [LoraTarget.Q, LoraTarget.Gate], 7, scale: 2.0f);

        var error = Assert.Throws<ArgumentException>(() => arena.Load(0, mlp));

        Assert.Contains("mlp.gate_proj", error.Message);
        Assert.Null(arena.Occupant(0));
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
