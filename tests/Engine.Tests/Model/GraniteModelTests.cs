using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
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
    public void Forward_AdaptersOnEveryProjection_MatchTheReferenceWithTheResidualMultiplierOverThem()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 64);
        var adapter = RandomAdapters.Create(loaded.Config, "a", 8, LoraTargets.All, 3, scale: 2.0f);
        loaded.Model.EnableAdapters(slots: 1, maxRank: 8).Load(0, adapter);
        using var cache = loaded.Model.CreateKvCache(1, 64);
        IReadOnlyList<AdapterSlotWeight> rows = [(0, 1f)];

        using var logits = loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompt, 0)]), cache, LogitsSelection.LastTokenPerSequence,
            LoraBatchMapping.ForSequences([Prompt.Length], [rows]));

        LlamaModelTests.AssertClose(new ScalarReferenceModel(_dir, adapters: [(adapter, 1f)]).Forward(Prompt)[^1], LlamaModelTests.Rows(logits)[0], "with the adapter");
    }

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
        string dir = Path.Combine(_root, "granite-tile-grid");
        if (!Directory.Exists(dir))
            SyntheticModelWriter.Write(dir, TileGridModel.Spec(seed: 61) with { Architecture = "GraniteForCausalLM" });
        using var loaded = LoadedModel.Load(dir, dtype, CPU, 64);
        var adapter = RandomAdapters.Create(loaded.Config, "a", 8, LoraTargets.All, 5, scale: 2.0f);
        loaded.Model.EnableAdapters(slots: 1, maxRank: 8).Load(0, adapter);
        int[][] prompts = [[464, 2068, 786, 2183, 40], [7, 8, 9]];

        List<float[]> Run(bool fused)
        {
            using var view = fused ? null : loaded.Model.WithKernels(new KernelOptions { FusedCpuDecode = false });
            var model = view ?? loaded.Model;
            using var cache = model.CreateKvCache(2, 64);
            IReadOnlyList<AdapterSlotWeight>[] rows = [[(0, 1f)], []];
            model.Forward(ForwardBatch.Create([(cache.Partition(0), prompts[0], 0), (cache.Partition(1), prompts[1], 0)]), cache, LogitsSelection.LastTokenPerSequence,
                LoraBatchMapping.ForSequences([prompts[0].Length, prompts[1].Length], rows)).Dispose();
            var logits = new List<float[]>();
            for (int step = 0; step < 4; step++)
            {
                using var decode = model.Forward(ForwardBatch.Create([(cache.Partition(0), new[] { 100 + step }, prompts[0].Length + step),
                    (cache.Partition(1), new[] { 200 + step }, prompts[1].Length + step)]), cache, LogitsSelection.LastTokenPerSequence, LoraBatchMapping.ForSequences([1, 1], rows));
                logits.AddRange(LlamaModelTests.Rows(decode));
            }

            return logits;
        }

        long before = loaded.Model.FusedDecodeSteps;
        var fused = Run(true);
        bool ran = loaded.Model.FusedDecodeSteps > before;
        var plain = Run(false);

        for (int i = 0; i < plain.Count; i++)
            Assert.Equal(plain[i], fused[i]);
        Assert.True(ran || !(VectorExp.IsSupported && SmallBatchGemv.IsAvailable), "the fused path did not run");
        if (dtype == ScalarType.Float32)
            LlamaModelTests.AssertClose(new ScalarReferenceModel(dir).Forward([.. prompts[1], 200, 201, 202, 203])[^1], fused[^1], "the base row's last step");
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
