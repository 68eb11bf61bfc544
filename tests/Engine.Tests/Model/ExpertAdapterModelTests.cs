using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// LoRA on a mixture of experts' experts (gate, up and down of every expert of some layers, and the attention's q): gpt-oss's
/// biased experts with the clamped SwiGLU (its gate and up interleaved in the checkpoint), Mixtral's and Qwen3-MoE's —
/// against the scalar reference forward adding each routed expert's LoRA, in prefill and in decode steps, batched beside a
/// base sequence that stays the base model's; and the fused CPU decode path's steps bit for bit the per-op path's.
/// </summary>
public sealed class ExpertAdapterModelTests : IDisposable
{
    private static readonly int[] Prompt = [464, 2068, 786, 2183, 40, 1101, 257, 1332, 13];
    private readonly string _root = TestDirectories.Create("expert-adapters");

    private string Model(string architecture)
    {
        string dir = Path.Combine(_root, architecture);
        if (!Directory.Exists(dir))
            SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Architecture = architecture, Seed = 143, ExpertIntermediate = architecture == "GptOssForCausalLM" ? 96 : null });
        return dir;
    }

    [Theory]
    [InlineData("GptOssForCausalLM")]
    [InlineData("MixtralForCausalLM")]
    [InlineData("Qwen3MoeForCausalLM")]
    public void Forward_ExpertAdapterBesideTheBase_MatchesScalarReference(string architecture)
    {
        string model = Model(architecture);
        var config = ModelConfig.Load(Path.Combine(model, "config.json"));
        var weights = RandomAdapters.CreateExperts(config, "experts", 4, [.. Enumerable.Range(0, config.NumLayers).Where(config.Experts!.IsSparse)], 5, scale: 2f,
            attention: [LoraTarget.Q]);
        var reference = new ScalarReferenceModel(model, adapters: [(weights, 1f)]);

        using var loaded = LoadedModel.Load(model, ScalarType.Float32, CPU, 64);
        loaded.Model.EnableAdapters(slots: 2, maxRank: 8).Load(1, weights);
        Assert.True(loaded.Model.Adapters!.AdaptsExperts(1));
        using var cache = loaded.Model.CreateKvCache(2, 64);
        var expected = reference.Forward(Prompt);
        var baseExpected = new ScalarReferenceModel(model).Forward(Prompt);
        IReadOnlyList<AdapterSlotWeight> adapted = [(1, 1f)], none = [];
        for (int at = 0, take = Prompt.Length - 2; at < Prompt.Length; at += take, take = 1)
        {
            using var logits = loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompt[at..(at + take)], at), (cache.Partition(1), Prompt[at..(at + take)], at)]),
                cache, LogitsSelection.LastTokenPerSequence, LoraBatchMapping.ForSequences([take, take], [adapted, none]));
            var rows = LlamaModelTests.Rows(logits);
            LlamaModelTests.AssertClose(expected[at + take - 1], rows[0], $"adapted, position {at + take - 1}");
            LlamaModelTests.AssertClose(baseExpected[at + take - 1], rows[1], $"base beside it, position {at + take - 1}");
        }

        var attentionOnly = new ScalarReferenceModel(model, adapters: [(new LoraAdapterWeights("q", [.. weights.Modules.Where(m => m.Expert is null)]), 1f)]).Forward(Prompt);
        float moved = expected[^1].Zip(attentionOnly[^1], (a, b) => MathF.Abs(a - b)).Max();
        Assert.True(moved > 1e-2f, $"the experts' LoRA moved no logit ({moved})");
    }

    /// <summary>
    /// Decode steps with an expert adapter in them on the fused CPU path (its experts on raw memory, their LoRA through the
    /// CPU kernel's rows) give the per-op path's bits, in bf16 and float32; and the adapter moves them.
    /// </summary>
    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float32)]
    public void Forward_DecodeStepsAdaptingExperts_FusedPathBitForBitThePerOpPath(ScalarType dtype)
    {
        string dir = TileGridModel.Ensure(Path.Combine(_root, "tile-grid"), TileGridModel.Spec(seed: 137) with { Architecture = "GptOssForCausalLM" });
        using var loaded = LoadedModel.Load(dir, dtype, CPU, 64);
        loaded.Model.EnableAdapters(slots: 1, maxRank: 8).Load(0, RandomAdapters.CreateExperts(loaded.Config, "experts", 4, [.. Enumerable.Range(0, loaded.Config.NumLayers)], 9, 2f));
        IReadOnlyList<AdapterSlotWeight>[] rows = [[(0, 1f)], []];

        List<float[]> Run(bool fused, bool adapted)
        {
            using var view = fused ? null : loaded.Model.WithKernels(new Serving.Engine.Kernels.KernelOptions { FusedCpuDecode = false });
            var model = view ?? loaded.Model;
            using var cache = model.CreateKvCache(2, 64);
            var mapping = adapted ? rows : [[], []];
            model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompt, 0), (cache.Partition(1), Prompt[..4], 0)]), cache, LogitsSelection.LastTokenPerSequence,
                LoraBatchMapping.ForSequences([Prompt.Length, 4], mapping)).Dispose();
            var logits = new List<float[]>();
            for (int step = 0; step < 3; step++)
            {
                using var decode = model.Forward(ForwardBatch.Create([(cache.Partition(0), new[] { 100 + step }, Prompt.Length + step), (cache.Partition(1), new[] { 200 + step }, 4 + step)]),
                    cache, LogitsSelection.LastTokenPerSequence, LoraBatchMapping.ForSequences([1, 1], mapping));
                logits.AddRange(LlamaModelTests.Rows(decode));
            }

            return logits;
        }

        long before = loaded.Model.FusedDecodeSteps;
        var fused = Run(fused: true, adapted: true);
        bool ran = loaded.Model.FusedDecodeSteps > before;
        var perOp = Run(fused: false, adapted: true);

        for (int i = 0; i < perOp.Count; i++)
            Assert.Equal(perOp[i], fused[i]);
        Assert.True(ran || !(Serving.Engine.Kernels.VectorExp.IsSupported && Serving.Engine.Kernels.SmallBatchGemv.IsAvailable), "the fused path did not run");
        var unadapted = Run(fused: true, adapted: false);
        Assert.NotEqual(unadapted[^2], fused[^2]);                         // the adapted row moved …
        Assert.Equal(unadapted[^1], fused[^1]);                            // … its base neighbour did not
    }

    [Fact]
    public void Load_ExpertModuleThatDoesNotFit_RefusedNamingIt()
    {
        var config = ModelConfig.Load(Path.Combine(Model("MixtralForCausalLM"), "config.json"));
        using var loaded = LoadedModel.Load(Model("MixtralForCausalLM"), ScalarType.Float32, CPU, 64);
        var arena = loaded.Model.EnableAdapters(slots: 1, maxRank: 8);
        var good = RandomAdapters.CreateExperts(config, "experts", 4, [0], 5, scale: 1f);
        var beyond = good.Modules[0] with { Expert = config.Experts!.Experts };

        var error = Assert.Throws<ArgumentException>(() => arena.Load(0, new LoraAdapterWeights("bad", [beyond])));

        Assert.Contains($"expert {config.Experts.Experts}", error.Message);
        Assert.False(arena.AdaptsExperts(0));
    }

    /// <summary>
    /// The experts' slots stay within their budget: an adapter that would take them beyond it is refused naming the setting,
    /// leaving the slots as they were; within it the slots are made, and freed with the last adapter that uses them.
    /// </summary>
    [Fact]
    public void Load_ExpertSlotsBeyondTheirBudget_RefusedAndFreedWithTheirLastAdapter()
    {
        using var loaded = LoadedModel.Load(Model("MixtralForCausalLM"), ScalarType.Float32, CPU, 64);
        var adapter = RandomAdapters.CreateExperts(loaded.Config, "experts", 4, [0], 5, scale: 1f);
        using var tight = LoadedModel.Load(Model("MixtralForCausalLM"), ScalarType.Float32, CPU, 64);
        var small = tight.Model.EnableAdapters(slots: 2, maxRank: 8, expertSlotBytes: 1 << 10);
        long before = small.Bytes;

        var error = Assert.Throws<ArgumentException>(() => small.Load(0, adapter));

        Assert.Contains("Serving:Adapters:MaxExpertSlotMiB", error.Message);
        Assert.Equal((before, false), (small.Bytes, small.AdaptsExperts(0)));
        var arena = loaded.Model.EnableAdapters(slots: 2, maxRank: 8);
        long dense = arena.Bytes;
        arena.Load(0, adapter);
        arena.Load(1, adapter);
        Assert.True(arena.Bytes > dense);
        arena.Free(0);
        Assert.True(arena.Bytes > dense, "slot 1 still uses the experts' slots");
        arena.Free(1);
        Assert.Equal(dense, arena.Bytes);
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
