using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Tests.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;
using Serving.Contracts.Generation;

namespace Serving.Engine.Tests.Lora;

/// <summary>Rows with different adapters, ranks, mixes and none, in one batch, checked row by row.</summary>
public sealed class MultiLoraForwardTests : IDisposable
{
    private static readonly int[][] Prompts = [[464, 2068, 7586, 21831], [40, 1101, 257, 1332, 13, 198], [15496, 11, 995], [50256, 318, 994, 7, 8], [1, 2, 3, 4, 5, 6, 7]];
    private readonly string _root = TestDirectories.Create("multi-lora");
    private readonly string _modelDir;
    private readonly LoadedModel _loaded;
    private readonly LoraAdapterWeights _a, _b, _c;

    public MultiLoraForwardTests()
    {
        _modelDir = Path.Combine(_root, "model");
        SyntheticModelWriter.Write(_modelDir, new SyntheticModelSpec { Seed = 21 });
        _loaded = LoadedModel.Load(_modelDir, ScalarType.Float32, CPU, 256);
        var c = _loaded.Config;
        _a = RandomAdapters.Create(c, "a", 4, LoraTargets.All, 1, scale: 2.0f);
        _b = RandomAdapters.Create(c, "b", 8, [LoraTarget.Q, LoraTarget.V], 2, scale: (float)(16 / Math.Sqrt(8)));   // rsLoRA-style scale
        _c = RandomAdapters.Create(c, "c", 16, [LoraTarget.Gate, LoraTarget.Up, LoraTarget.Down, LoraTarget.O], 3, scale: 0.5f, layers: new HashSet<int> { 1 });
        var arena = _loaded.Model.EnableAdapters(slots: 4, maxRank: 16);
        arena.Load(3, _a);
        arena.Load(0, _b);
        arena.Load(2, _c);
    }

    private static readonly IReadOnlyList<AdapterSlotWeight>[] RowAdapters =
    [
        [(3, 1f)],                 // a
        [(0, 1f)],                 // b (rank 8, q/v only)
        [],                        // base model
        [(3, 0.7f), (2, 0.3f)],    // mix of a and c
        [(2, 1f)],                 // c (rank 16, MLP + o of layer 1 only)
    ];

    private float[][] RunAll(ILoraKernel kernel, int decodeSteps, out List<float[][]> decodeLogits)
    {
        using var model = _loaded.Model.WithKernels(new KernelOptions { Lora = kernel });
        using var cache = model.CreateKvCache(8, 64);
        var handles = Prompts.Select((_, i) => cache.Partition(i)).ToList();
        var batch = ForwardBatch.Create(Prompts.Select((p, i) => (handles[i], (IReadOnlyList<int>)p, 0)).ToList());
        var mapping = LoraBatchMapping.ForSequences(Prompts.Select(p => p.Length).ToList(), RowAdapters);
        using var logits = model.Forward(batch, cache, LogitsSelection.LastTokenPerSequence, mapping);
        decodeLogits = [];
        for (int step = 0; step < decodeSteps; step++)
        {
            var decode = ForwardBatch.Create(Prompts.Select((p, i) => (handles[i], (IReadOnlyList<int>)new[] { 100 + step }, p.Length + step)).ToList());
            var decodeMapping = LoraBatchMapping.ForSequences(Prompts.Select(_ => 1).ToList(), RowAdapters);
            using var l = model.Forward(decode, cache, LogitsSelection.LastTokenPerSequence, decodeMapping);
            decodeLogits.Add(LlamaModelTests.Rows(l));
        }

        return LlamaModelTests.Rows(logits);
    }

    private float[] RunAlone(int row, int decodeSteps)
    {
        using var cache = _loaded.Model.CreateKvCache(1, 64);
        var kv = cache.Partition(0);
        var mapping = LoraBatchMapping.ForSequences([Prompts[row].Length], [RowAdapters[row]]);
        var last = LlamaModelTests.Rows(_loaded.Model.Forward(ForwardBatch.Create([(kv, Prompts[row], 0)]), cache, LogitsSelection.LastTokenPerSequence, mapping))[0];
        for (int step = 0; step < decodeSteps; step++)
        {
            using var l = _loaded.Model.Forward(ForwardBatch.Create([(kv, new[] { 100 + step }, Prompts[row].Length + step)]), cache,
                LogitsSelection.LastTokenPerSequence, LoraBatchMapping.ForSequences([1], [RowAdapters[row]]));
            last = LlamaModelTests.Rows(l)[0];
        }

        return last;
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("reference")]
    [InlineData("gather")]
    public void Forward_MixedAdapterBatch_EachRowEqualsItsRunAlone(string kernelName)
    {
        ILoraKernel kernel = kernelName switch { "cpu" => new CpuLoraKernel(), "gather" => new GatherLoraKernel(), _ => new ReferenceLoraKernel() };
        RunAll(kernel, 2, out var decode);
        for (int row = 0; row < Prompts.Length; row++)
            LlamaModelTests.AssertClose(RunAlone(row, 2), decode[^1][row], $"row {row} ({kernelName})");
    }

    [Fact]
    public void Forward_AdapterRows_DifferFromBaseAndBaseRowIsUntouched()
    {
        var prefill = RunAll(new CpuLoraKernel(), 0, out _);
        using var cache = _loaded.Model.CreateKvCache(1, 64);
        var kv = cache.Partition(0);
        var plain = LlamaModelTests.Rows(_loaded.Model.Forward(ForwardBatch.Create([(kv, Prompts[2], 0)]), cache))[0];
        LlamaModelTests.AssertClose(plain, prefill[2], "base row");
        Assert.True(prefill[0].Zip(RunBase(0)).Max(p => Math.Abs(p.First - p.Second)) > 0.01, "adapter a should change the logits");
    }

    private float[] RunBase(int row)
    {
        using var cache = _loaded.Model.CreateKvCache(1, 64);
        return LlamaModelTests.Rows(_loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompts[row], 0)]), cache))[0];
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(4)]
    public void Forward_AdapterRow_EqualsOfflineMergedWeights(int row)
    {
        var prefill = RunAll(new CpuLoraKernel(), 0, out _);
        string merged = Path.Combine(_root, $"merged-{row}");
        MergedModelWriter.Write(_modelDir, merged, RowAdapters[row].Select(e => (Adapter(e.Slot), e.Weight)).ToList());
        using var mergedModel = LoadedModel.Load(merged, ScalarType.Float32, CPU, 256);
        using var cache = mergedModel.Model.CreateKvCache(1, 64);
        var expected = LlamaModelTests.Rows(mergedModel.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompts[row], 0)]), cache))[0];
        LlamaModelTests.AssertClose(expected, prefill[row], $"row {row} vs merged weights");
    }

    [Fact]
    public void Step_SequencesWithDifferentAdapters_GenerateAsEachAlone()
    {
        var greedy = new SamplingParams { Temperature = 0, MaxTokens = 6, IgnoreEos = true };
        Serving.Engine.Generation.SequenceState SequenceStateFor(int row) => new(Prompts[row], greedy, _loaded.Tokenizer, [], RowAdapters[row]);
        using var cache = _loaded.Model.CreateKvCache(8, 64);
        var stepper = new Serving.Engine.Generation.GenerationStepper(_loaded.Model, cache);
        var alone = Enumerable.Range(0, Prompts.Length).Select(row =>
        {
            var s = SequenceStateFor(row);
            while (!s.IsFinished)
                stepper.RunAll([s]);
            return s.GeneratedTokens.ToArray();
        }).ToList();
        var together = Enumerable.Range(0, Prompts.Length).Select(SequenceStateFor).ToList();
        while (together.Any(s => !s.IsFinished))
            stepper.RunAll(together);
        for (int row = 0; row < Prompts.Length; row++)
            Assert.Equal(alone[row], together[row].GeneratedTokens);
        Assert.NotEqual(alone[0], alone[2]);
    }

    private LoraAdapterWeights Adapter(int slot) => slot switch { 3 => _a, 0 => _b, 2 => _c, _ => throw new ArgumentOutOfRangeException(nameof(slot)) };

    public void Dispose()
    {
        _loaded.Dispose();
        TestDirectories.Delete(_root);
    }
}
