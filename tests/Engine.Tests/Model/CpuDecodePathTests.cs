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
/// The fused all-decode CPU path against the per-op CPU path of the same model, bf16 and float32: they run the same kernels,
/// so their logits must be equal bit for bit, step after step, as the batch shrinks, with adapters or without. With AMX a
/// bf16 model is packed; otherwise its decode rows (four, or nine: two groups of four and one more) run on the small-batch
/// kernel (<see cref="SmallBatchGemv"/>) on both sides; an int8 model runs its int8 kernel on both. The step count pins that a machine with either kernel uses the path.
/// </summary>
public sealed class CpuDecodePathTests : IDisposable
{
    private static readonly int[][] FourPrompts = [[464, 2068, 786, 2183], [40, 1101, 257, 1332, 13, 198, 11, 12, 13], [1549, 11, 995], [3, 318, 994, 7, 8]];

    /// <summary>Nine sequences: two groups of four rows and one more for the small-batch kernel's grouped rows.</summary>
    private static readonly int[][] NinePrompts = [.. FourPrompts, [5, 6, 7], [901, 902], [17, 18, 19, 20, 21, 22], [333], [44, 55, 66, 77]];
    private readonly string _root = TestDirectories.Create("cpu-decode-path");
    private readonly Dictionary<(ScalarType, bool, bool, bool), LoadedModel> _models = [];

    /// <summary>
    /// One layer as wide as the bench preset (hidden 1,024 in 16 heads of 64, intermediate 2,816): at eight rows its norms,
    /// RoPE, SwiGLU, int8 input quantization and LoRA updates are large enough to be shared with the team inside a held region.
    /// </summary>
    private static readonly ModelPreset WidePreset = new("wide-rows", 1024, 2816, 1, 16, 4, 4096, 256);

    /// <summary>The tile-grid model as Qwen3: q/k heads RMSNormed before RoPE, 4 heads of 64 over a hidden size of 128.</summary>
    private static SyntheticModelSpec Qwen3Spec => TileGridModel.Spec(seed: 37) with { Architecture = "Qwen3ForCausalLM", HeadDim = 64 };

    private LoadedModel Model(ScalarType dtype, bool int8, bool wide = false, bool qwen3 = false)
    {
        if (!_models.TryGetValue((dtype, int8, wide, qwen3), out var loaded))
        {
            string dir = Path.Combine(_root, wide ? "wide-model" : qwen3 ? "qwen3-model" : "model");
            if (!Directory.Exists(dir))
                SyntheticModelWriter.Write(dir, wide ? new SyntheticModelSpec { Preset = WidePreset, Seed = 31, Vocab = 4096 } : qwen3 ? Qwen3Spec : TileGridModel.Spec(seed: 29));
            _models[(dtype, int8, wide, qwen3)] = loaded = LoadedModel.Load(dir, dtype, CPU, 256,
                quantization: int8 ? Engine.Quantization.WeightQuantization.Int8 : Engine.Quantization.WeightQuantization.None);
        }

        return loaded;
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, false, 4)]
    [InlineData(ScalarType.Float32, false, 4)]
    [InlineData(ScalarType.BFloat16, true, 4)]
    [InlineData(ScalarType.Float32, true, 4)]
    [InlineData(ScalarType.BFloat16, false, 9)]
    [InlineData(ScalarType.Float32, false, 9)]
    public void Forward_AllDecodeSteps_EqualThePerOpPathBitForBit(ScalarType dtype, bool int8, int sequences)
    {
        var loaded = Model(dtype, int8);
        long before = loaded.Model.FusedDecodeSteps;

        var (fused, plain) = (Run(loaded, fusedDecode: true, adapters: false, sequences), Run(loaded, fusedDecode: false, adapters: false, sequences));

        Assert.Equal(plain.Count, fused.Count);
        for (int i = 0; i < plain.Count; i++)
            Assert.Equal(plain[i], fused[i]);
        Assert.Equal(FusedPathRuns(dtype, int8) ? DecodeSteps : 0, loaded.Model.FusedDecodeSteps - before);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, false, 4)]
    [InlineData(ScalarType.Float32, false, 4)]
    [InlineData(ScalarType.BFloat16, true, 4)]
    [InlineData(ScalarType.Float32, true, 4)]
    [InlineData(ScalarType.BFloat16, false, 9)]
    public void Forward_AllDecodeStepsWithAdapters_EqualThePerOpPathBitForBit(ScalarType dtype, bool int8, int sequences) =>
        AssertWithAdaptersEqualThePerOpPath(Model(dtype, int8), dtype, int8, sequences);

    /// <summary>
    /// Eight rows of the wide model: inside the fused step's held region its small kernels run on both threads
    /// (<see cref="OpenMpTeam.CallsAreCheap"/>), on the per-op path on one; the rows' results must not depend on the split.
    /// </summary>
    [Theory]
    [InlineData(ScalarType.BFloat16, false)]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.BFloat16, true)]
    public void Forward_EightRowsOfAWideModelWithAdapters_EqualThePerOpPathBitForBit(ScalarType dtype, bool int8) =>
        AssertWithAdaptersEqualThePerOpPath(Model(dtype, int8, wide: true), dtype, int8, sequences: 8);

    [Theory]
    [InlineData(ScalarType.BFloat16, false)]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.BFloat16, true)]
    public void Forward_Qwen3DecodeStepsWithAdapters_EqualThePerOpPathBitForBit(ScalarType dtype, bool int8) =>
        AssertWithAdaptersEqualThePerOpPath(Model(dtype, int8, qwen3: true), dtype, int8, sequences: 4);

    private static void AssertWithAdaptersEqualThePerOpPath(LoadedModel loaded, ScalarType dtype, bool int8, int sequences)
    {
        var c = loaded.Config;
        var arena = loaded.Model.Adapters ?? loaded.Model.EnableAdapters(slots: 3, maxRank: 16);
        arena.Load(0, RandomAdapters.Create(c, "a", 8, LoraTargets.All, 1, scale: 2.0f));
        arena.Load(2, RandomAdapters.Create(c, "b", 16, [LoraTarget.Q, LoraTarget.V, LoraTarget.Down], 2, scale: 0.5f));
        long before = loaded.Model.FusedDecodeSteps;

        var (fused, plain) = (Run(loaded, fusedDecode: true, adapters: true, sequences), Run(loaded, fusedDecode: false, adapters: true, sequences));

        for (int i = 0; i < plain.Count; i++)
            Assert.Equal(plain[i], fused[i]);
        Assert.True(loaded.Model.FusedDecodeSteps > before || !FusedPathRuns(dtype, int8), "the fused path did not run");
        Assert.NotEqual(Run(loaded, fusedDecode: true, adapters: false, sequences)[^1], fused[^1]);   // the adapters did change the logits
    }

    private const int DecodeSteps = 6;

    /// <summary>The path's element-wise and attention kernels need AVX-512; an int8 model's projections run on any CPU.</summary>
    /// <summary>Whether this CPU runs the test model's decode steps on the fused path: its vector kernels, and a raw-memory projection kernel for the weights.</summary>
    private static bool FusedPathRuns(ScalarType dtype, bool int8) =>
        dtype == ScalarType.BFloat16 && AmxNative.IsAvailable && !int8 || FusedPathHardware && (int8 || SmallBatchGemv.IsAvailable);

    private static bool FusedPathHardware => VectorExp.IsSupported && DecodeAttentionScores.Supports(TileGridModel.Preset.Hidden / TileGridModel.Preset.Heads);

    private static readonly IReadOnlyList<AdapterSlotWeight>[] RowPatterns = [[(0, 1f)], [], [(2, 1f)], [(0, 0.6f), (2, 0.4f)]];

    /// <summary>Row i's adapters: the four patterns in turn.</summary>
    private static IReadOnlyList<AdapterSlotWeight> RowAdapters(int i) => RowPatterns[i % RowPatterns.Length];

    /// <summary>Prefill (per-op path), then decode steps; the last sequence leaves after 3 steps, so T changes. Every logit row.</summary>
    private static List<float[]> Run(LoadedModel loaded, bool fusedDecode, bool adapters, int sequences)
    {
        var prompts = sequences == 4 ? FourPrompts : NinePrompts[..sequences];
        using var view = fusedDecode ? null : loaded.Model.WithKernels(new KernelOptions { FusedCpuDecode = false });
        var model = view ?? loaded.Model;
        using var cache = model.CreateKvCache(prompts.Length, 64);
        var kv = prompts.Select((_, i) => cache.Partition(i)).ToList();
        LoraBatchMapping? Mapping(int rows, IReadOnlyList<int> tokens) =>
            adapters ? LoraBatchMapping.ForSequences(tokens, Enumerable.Range(0, rows).Select(RowAdapters).ToList()) : null;
        var rowsOut = new List<float[]>();
        using (var prefill = model.Forward(ForwardBatch.Create(prompts.Select((p, i) => (kv[i], (IReadOnlyList<int>)p, 0)).ToList()), cache,
                   LogitsSelection.LastTokenPerSequence, Mapping(prompts.Length, prompts.Select(p => p.Length).ToList())))
            rowsOut.AddRange(LlamaModelTests.Rows(prefill));
        for (int step = 0; step < DecodeSteps; step++)
        {
            int live = step < 3 ? prompts.Length : prompts.Length - 1;
            var batch = ForwardBatch.Create(Enumerable.Range(0, live)
                .Select(i => (kv[i], (IReadOnlyList<int>)new[] { 100 + 17 * step + i }, prompts[i].Length + step)).ToList());
            using var logits = model.Forward(batch, cache, LogitsSelection.LastTokenPerSequence, Mapping(live, Enumerable.Repeat(1, live).ToList()));
            rowsOut.AddRange(LlamaModelTests.Rows(logits));
        }

        return rowsOut;
    }

    public void Dispose()
    {
        foreach (var loaded in _models.Values)
            loaded.Dispose();
        TestDirectories.Delete(_root);
    }
}
