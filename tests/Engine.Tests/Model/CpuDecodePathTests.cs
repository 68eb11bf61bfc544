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
/// The fused all-decode CPU path against the per-op CPU path of the same bf16 model: they run the same kernels, so their
/// logits must be equal bit for bit, step after step, as the batch shrinks, with adapters or without. With AMX the model is
/// packed; without it, its four decode rows run on the small-batch kernel (<see cref="GemvNative"/>) on both sides. The step
/// count pins that a machine with either kernel uses the path.
/// </summary>
public sealed class CpuDecodePathTests : IDisposable
{
    private static readonly int[][] Prompts = [[464, 2068, 786, 2183], [40, 1101, 257, 1332, 13, 198, 11, 12, 13], [1549, 11, 995], [3, 318, 994, 7, 8]];
    private readonly string _root = TestDirectories.Create("cpu-decode-path");
    private readonly LoadedModel _loaded;

    public CpuDecodePathTests()
    {
        string dir = Path.Combine(_root, "model");
        SyntheticModelWriter.Write(dir, TileGridModel.Spec(seed: 29));
        _loaded = LoadedModel.Load(dir, ScalarType.BFloat16, CPU, 256);
    }

    [Fact]
    public void Forward_AllDecodeSteps_EqualThePerOpPathBitForBit()
    {
        long before = _loaded.Model.FusedDecodeSteps;

        var (fused, plain) = (Run(fusedDecode: true, adapters: false), Run(fusedDecode: false, adapters: false));

        Assert.Equal(plain.Count, fused.Count);
        for (int i = 0; i < plain.Count; i++)
            Assert.Equal(plain[i], fused[i]);
        Assert.Equal(AmxNative.IsAvailable || GemvNative.IsAvailable ? DecodeSteps : 0, _loaded.Model.FusedDecodeSteps - before);
    }

    [Fact]
    public void Forward_AllDecodeStepsWithAdapters_EqualThePerOpPathBitForBit()
    {
        var c = _loaded.Config;
        var arena = _loaded.Model.Adapters ?? _loaded.Model.EnableAdapters(slots: 3, maxRank: 16);
        arena.Load(0, RandomAdapters.Create(c, "a", 8, LoraTargets.All, 1, scale: 2.0f));
        arena.Load(2, RandomAdapters.Create(c, "b", 16, [LoraTarget.Q, LoraTarget.V, LoraTarget.Down], 2, scale: 0.5f));

        var (fused, plain) = (Run(fusedDecode: true, adapters: true), Run(fusedDecode: false, adapters: true));

        for (int i = 0; i < plain.Count; i++)
            Assert.Equal(plain[i], fused[i]);
        Assert.NotEqual(Run(fusedDecode: true, adapters: false)[^1], fused[^1]);   // the adapters did change the logits
    }

    private const int DecodeSteps = 6;

    private static readonly IReadOnlyList<AdapterSlotWeight>[] RowAdapters = [[(0, 1f)], [], [(2, 1f)], [(0, 0.6f), (2, 0.4f)]];

    /// <summary>Prefill (per-op path), then decode steps; the last sequence leaves after 3 steps, so T changes. Every logit row.</summary>
    private List<float[]> Run(bool fusedDecode, bool adapters)
    {
        using var view = fusedDecode ? null : _loaded.Model.WithKernels(new KernelOptions { FusedCpuDecode = false });
        var model = view ?? _loaded.Model;
        using var cache = model.CreateKvCache(Prompts.Length, 64);
        var kv = Prompts.Select((_, i) => cache.Partition(i)).ToList();
        LoraBatchMapping? Mapping(int rows, IReadOnlyList<int> tokens) =>
            adapters ? LoraBatchMapping.ForSequences(tokens, RowAdapters.Take(rows).ToList()) : null;
        var rowsOut = new List<float[]>();
        using (var prefill = model.Forward(ForwardBatch.Create(Prompts.Select((p, i) => (kv[i], (IReadOnlyList<int>)p, 0)).ToList()), cache,
                   LogitsSelection.LastTokenPerSequence, Mapping(Prompts.Length, Prompts.Select(p => p.Length).ToList())))
            rowsOut.AddRange(LlamaModelTests.Rows(prefill));
        for (int step = 0; step < DecodeSteps; step++)
        {
            int live = step < 3 ? Prompts.Length : Prompts.Length - 1;
            var batch = ForwardBatch.Create(Enumerable.Range(0, live)
                .Select(i => (kv[i], (IReadOnlyList<int>)new[] { 100 + 17 * step + i }, Prompts[i].Length + step)).ToList());
            using var logits = model.Forward(batch, cache, LogitsSelection.LastTokenPerSequence, Mapping(live, Enumerable.Repeat(1, live).ToList()));
            rowsOut.AddRange(LlamaModelTests.Rows(logits));
        }

        return rowsOut;
    }

    public void Dispose()
    {
        _loaded.Dispose();
        TestDirectories.Delete(_root);
    }
}
