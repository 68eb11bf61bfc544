using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Sampling;
using Serving.Engine.Tests.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Lora;

/// <summary>
/// DoRA rows (ranks 4/8/16, rsLoRA-style and plain scales, every projection) batched with base and plain-LoRA rows, on
/// every kernel: each row equals its run alone and the offline merged weights <c>g ⊙ (W + s·B·A)</c> (float32).
/// </summary>
public sealed class DoraForwardTests : IDisposable
{
    private static readonly int[][] Prompts = [[464, 2068, 7586, 21831], [40, 1101, 257, 1332, 13, 198], [15496, 11, 995], [50256, 318, 994, 7, 8], [1, 2, 3, 4, 5, 6, 7]];
    private readonly string _root = TestDirectories.Create("dora");
    private readonly string _modelDir;
    private readonly LoadedModel _loaded;
    private readonly LoraAdapterWeights[] _bySlot;

    private static readonly IReadOnlyList<AdapterSlotWeight>[] RowAdapters =
    [
        [(0, 1f)],     // DoRA rank 4, every projection
        [(1, 1f)],     // plain LoRA rank 8
        [],            // base
        [(2, 1f)],     // DoRA rank 8, q/v, rsLoRA scale
        [(3, 1f)],     // DoRA rank 16, MLP and o of layer 1
    ];

    public DoraForwardTests()
    {
        _modelDir = Path.Combine(_root, "model");
        SyntheticModelWriter.Write(_modelDir, new SyntheticModelSpec { Seed = 23 });
        _loaded = LoadedModel.Load(_modelDir, ScalarType.Float32, CPU, 256);
        var c = _loaded.Config;
        _bySlot =
        [
            WithMagnitudes(RandomAdapters.Create(c, "d4", 4, LoraTargets.All, 1, scale: 2.0f), 11),
            RandomAdapters.Create(c, "lora8", 8, LoraTargets.All, 2, scale: 1.0f),
            WithMagnitudes(RandomAdapters.Create(c, "d8", 8, [LoraTarget.Q, LoraTarget.V], 3, scale: (float)(16 / Math.Sqrt(8))), 12),
            WithMagnitudes(RandomAdapters.Create(c, "d16", 16, [LoraTarget.Gate, LoraTarget.Up, LoraTarget.Down, LoraTarget.O], 4, scale: 0.5f,
                layers: new HashSet<int> { 1 }), 13),
        ];
        var arena = _loaded.Model.EnableAdapters(slots: 4, maxRank: 16);
        for (int slot = 0; slot < _bySlot.Length; slot++)
            arena.Load(slot, _bySlot[slot]);
    }

    /// <summary>Magnitudes m = ‖W + s·B·A‖ · u, u uniform in [0.5, 1.5): the scale g each row then gets is u.</summary>
    private LoraAdapterWeights WithMagnitudes(LoraAdapterWeights adapter, ulong seed)
    {
        var random = new SeededRandom(seed);
        var file = SafetensorsFile.Open(Path.Combine(_modelDir, "model.safetensors"));
        return adapter with
        {
            Modules = adapter.Modules.Select(m =>
            {
                var t = file.Tensors[$"model.layers.{m.Layer}.{LoraTargets.ModulePath(m.Target)}.weight"];
                var bytes = new byte[t.ByteLength];
                file.ReadInto(t, bytes);
                var w = new float[bytes.Length / 4];
                Buffer.BlockCopy(bytes, 0, w, 0, bytes.Length);
                var norms = MergedModelWriter.RowNorms(w, (int)t.Shape[0], (int)t.Shape[1], m);
                return m with { Magnitude = norms.Select(n => (float)(n * (0.5 + random.NextDouble()))).ToArray() };
            }).ToList(),
        };
    }

    private float[][] RunAll(ILoraKernel kernel, int decodeSteps)
    {
        using var model = _loaded.Model.WithKernels(new KernelOptions { Lora = kernel });
        using var cache = model.CreateKvCache(8, 64);
        var handles = Prompts.Select((_, i) => cache.Partition(i)).ToList();
        var batch = ForwardBatch.Create(Prompts.Select((p, i) => (handles[i], (IReadOnlyList<int>)p, 0)).ToList());
        var last = LlamaModelTests.Rows(model.Forward(batch, cache, LogitsSelection.LastTokenPerSequence,
            LoraBatchMapping.ForSequences(Prompts.Select(p => p.Length).ToList(), RowAdapters)));
        for (int step = 0; step < decodeSteps; step++)
        {
            var decode = ForwardBatch.Create(Prompts.Select((p, i) => (handles[i], (IReadOnlyList<int>)new[] { 100 + step }, p.Length + step)).ToList());
            using var l = model.Forward(decode, cache, LogitsSelection.LastTokenPerSequence, LoraBatchMapping.ForSequences(Prompts.Select(_ => 1).ToList(), RowAdapters));
            last = LlamaModelTests.Rows(l);
        }

        return last;
    }

    private static ILoraKernel Kernel(string name) => name switch { "cpu" => new CpuLoraKernel(), "gather" => new GatherLoraKernel(), _ => new ReferenceLoraKernel() };

    private float[] RunMerged(int row)
    {
        string merged = Path.Combine(_root, $"merged-{row}");
        if (!Directory.Exists(merged))
            MergedModelWriter.Write(_modelDir, merged, RowAdapters[row].Select(e => (_bySlot[e.Slot], e.Weight)).ToList());
        using var mergedModel = LoadedModel.Load(merged, ScalarType.Float32, CPU, 256);
        using var cache = mergedModel.Model.CreateKvCache(1, 64);
        return LlamaModelTests.Rows(mergedModel.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompts[row], 0)]), cache))[0];
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("reference")]
    [InlineData("gather")]
    public void Forward_DoraRowsInAMixedBatch_EqualMergedWeights(string kernelName)
    {
        var kernel = Kernel(kernelName);
        var prefill = RunAll(kernel, 0);
        foreach (int row in (int[])[0, 1, 3, 4])
            LlamaModelTests.AssertClose(RunMerged(row), prefill[row], $"row {row} ({kernelName}) vs merged weights");
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("reference")]
    [InlineData("gather")]
    public void Decode_DoraRowsInAMixedBatch_EqualEachAlone(string kernelName)
    {
        var kernel = Kernel(kernelName);
        var together = RunAll(kernel, 2);
        for (int row = 0; row < Prompts.Length; row++)
        {
            using var cache = _loaded.Model.CreateKvCache(1, 64);
            var kv = cache.Partition(0);
            using var model = _loaded.Model.WithKernels(new KernelOptions { Lora = kernel });
            var alone = LlamaModelTests.Rows(model.Forward(ForwardBatch.Create([(kv, Prompts[row], 0)]), cache, LogitsSelection.LastTokenPerSequence,
                LoraBatchMapping.ForSequences([Prompts[row].Length], [RowAdapters[row]])))[0];
            for (int step = 0; step < 2; step++)
            {
                using var l = model.Forward(ForwardBatch.Create([(kv, new[] { 100 + step }, Prompts[row].Length + step)]), cache,
                    LogitsSelection.LastTokenPerSequence, LoraBatchMapping.ForSequences([1], [RowAdapters[row]]));
                alone = LlamaModelTests.Rows(l)[0];
            }

            LlamaModelTests.AssertClose(alone, together[row], $"row {row} ({kernelName})");
        }
    }

    [Fact]
    public void Load_MagnitudeEqualToTheNorms_SameAsPlainLora()
    {
        // g = 1 everywhere: a DoRA adapter whose magnitudes are exactly its norms is the plain LoRA adapter.
        var plain = _bySlot[1];
        var unit = WithMagnitudes(plain, 99) with { Name = "unit" };
        unit = unit with { Modules = unit.Modules.Zip(plain.Modules, (d, p) => d with { Magnitude = Norms(p) }).ToList() };
        _loaded.Model.Adapters!.Load(2, unit);
        var plainRow = RunWith(1);
        var unitRow = RunWith(2);
        _loaded.Model.Adapters!.Load(2, _bySlot[2]);
        LlamaModelTests.AssertClose(plainRow, unitRow, "unit DoRA vs plain LoRA");
    }

    private float[] RunWith(int slot)
    {
        using var cache = _loaded.Model.CreateKvCache(1, 64);
        return LlamaModelTests.Rows(_loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), Prompts[1], 0)]), cache, LogitsSelection.LastTokenPerSequence,
            LoraBatchMapping.ForSequences([Prompts[1].Length], [[(slot, 1f)]])))[0];
    }

    private float[] Norms(LoraModuleWeights m)
    {
        var file = SafetensorsFile.Open(Path.Combine(_modelDir, "model.safetensors"));
        var t = file.Tensors[$"model.layers.{m.Layer}.{LoraTargets.ModulePath(m.Target)}.weight"];
        var bytes = new byte[t.ByteLength];
        file.ReadInto(t, bytes);
        var w = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, w, 0, bytes.Length);
        return MergedModelWriter.RowNorms(w, (int)t.Shape[0], (int)t.Shape[1], m).Select(n => (float)n).ToArray();
    }

    [Fact]
    public void Load_ZeroMagnitudeRowNormOrWrongLength_Refused()
    {
        var m = _bySlot[0].Modules[0];
        var shortMagnitude = _bySlot[0] with { Modules = [m with { Magnitude = m.Magnitude![..^1] }] };
        Assert.Contains("magnitude has", Assert.Throws<ArgumentException>(() => _loaded.Model.Adapters!.Load(1, shortMagnitude)).Message);
        var nan = _bySlot[0] with { Modules = [m with { Magnitude = [.. m.Magnitude!.Select((v, i) => i == 0 ? float.NaN : v)] }] };
        Assert.Contains("not finite", Assert.Throws<ArgumentException>(() => _loaded.Model.Adapters!.Load(1, nan)).Message);
        _loaded.Model.Adapters!.Load(1, _bySlot[1]);
    }

    public void Dispose()
    {
        _loaded.Dispose();
        TestDirectories.Delete(_root);
    }
}
