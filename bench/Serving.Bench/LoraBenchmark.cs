using System.Diagnostics;
using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Sampling;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// Cost of batched multi-LoRA over the base model on the bench preset: rank-16 adapters on all seven projections,
/// decode at batch 32 (one adapter for all rows, 8 distinct, 32 distinct) and prefill of 8 × 256-token prompts with 8
/// distinct adapters, for both kernels and both compute dtypes. Every variant is timed interleaved with the base
/// step it is compared to, and the medians are divided.
/// </summary>
internal sealed class LoraBenchmark(string modelDir, int steps, int rank, IReadOnlyList<ScalarType> dtypes, string? kernel = null)
{
    public static readonly ScalarType[] AllDtypes = [ScalarType.Float32, ScalarType.BFloat16];
    private IReadOnlyList<ScalarType> Dtypes => dtypes;
    /// <summary>
    /// The kernels compared, by column name: the fast CPU kernel as the engine runs it, the same with bfloat16 rows kept on
    /// its C# loops (only where the native AVX512-BF16 row kernel is in use, so its gain shows in one run), the reference.
    /// </summary>
    private readonly (string Name, ILoraKernel Kernel, bool Bf16Only)[] Kernels = new (string, ILoraKernel, bool)[]
        {
            ("cpu-simd", new CpuLoraKernel(), false),
            ("cpu-simd, C# rows", new CpuLoraKernel(nativeBf16Rows: false), true),
            ("reference", new ReferenceLoraKernel(), false),
        }
        .Where(k => (kernel is null || k.Item2.Name == kernel) && (!k.Item3 || LoraNative.IsAvailable)).ToArray();

    public BenchReport Run()
    {
        using var inference = no_grad();         // as GenerationStepper: the server records no autograd graph
        var columns = Dtypes.SelectMany(d => Kernels.Select(k => $"{(d == ScalarType.Float32 ? "f32" : "bf16")} {k.Name}")).ToArray();
        var report = new BenchReport($"Multi-LoRA cost over the base model: bench preset, rank-{rank} adapters on all 7 projections, CPU", columns);
        report.Context("steps", steps);
        report.Context("rank", rank);
        report.Context("native bf16 LoRA rows", LoraNative.Status);
        var results = new List<Dictionary<string, double>>();
        foreach (var dtype in Dtypes)
            results.AddRange(Measure(dtype));
        foreach (string row in results[0].Keys)
            report.Add(row, row.StartsWith("base", StringComparison.Ordinal) || row.StartsWith("LoRA kernel alone", StringComparison.Ordinal) ? "ms" : row.StartsWith("adapter bytes", StringComparison.Ordinal) ? "MB"
                : row.StartsWith("measured", StringComparison.Ordinal) ? "GB/s" : "×", results.Select(r => double.IsNaN(r[row]) ? null : (double?)r[row]).ToArray());
        return report;
    }

    private IEnumerable<Dictionary<string, double>> Measure(ScalarType dtype)
    {
        double bandwidth = EngineBenchmark.MeasureReadBandwidth();
        Console.Error.WriteLine($"{dtype}: loading, creating 32 adapter slots");
        using var loaded = LoadedModel.Load(modelDir, dtype, CPU, 1024);
        var model = loaded.Model;
        var arena = model.EnableAdapters(32, rank);
        var distinct = Enumerable.Range(0, 4).Select(i => RandomAdapter(model, $"a{i}", (ulong)i + 1, rank)).ToList();
        for (int s = 0; s < 32; s++)
            arena.Load(s, distinct[s % distinct.Count]);   // 32 slots, 32 separate copies in memory
        using var cache = model.CreateKvCache(34, 320);
        var handles = Enumerable.Range(0, 32).Select(cache.Partition).ToList();
        var prompt = Enumerable.Range(0, 64).Select(i => 100 + i).ToArray();
        model.Forward(ForwardBatch.Create(handles.Select(h => (h, (IReadOnlyList<int>)prompt, 0)).ToList()), cache).Dispose();
        var decode = ForwardBatch.Create(handles.Select(h => (h, (IReadOnlyList<int>)new[] { 7 }, 64)).ToList());
        var ones = Enumerable.Repeat(1, 32).ToList();
        var same = LoraBatchMapping.ForSequences(ones, ones.Select(_ => Entry(0)).ToList());
        var eight = LoraBatchMapping.ForSequences(ones, Enumerable.Range(0, 32).Select(r => Entry(r / 4)).ToList());
        var all = LoraBatchMapping.ForSequences(ones, Enumerable.Range(0, 32).Select(Entry).ToList());
        var single = ForwardBatch.Create([(handles[0], (IReadOnlyList<int>)new[] { 7 }, 64)]);
        var singleMapping = LoraBatchMapping.ForSequences([1], [Entry(0)]);

        // A continuous-batching step: the 32 decode rows (8 adapters, 4 rows each) plus two new 64-token prompts, for
        // adapters 0 and 1, prefilled in the same step.
        var joining = new[] { cache.Partition(32), cache.Partition(33) };
        var mixedStep = ForwardBatch.Create(handles.Select(h => (h, (IReadOnlyList<int>)new[] { 7 }, 64))
            .Concat(joining.Select((h, i) => (h, (IReadOnlyList<int>)Enumerable.Range(0, 64).Select(t => 300 + t * 3 + i).ToArray(), 0))).ToList());
        var mixedStepMapping = LoraBatchMapping.ForSequences(Enumerable.Repeat(1, 32).Concat([64, 64]).ToList(),
            Enumerable.Range(0, 32).Select(r => Entry(r / 4)).Concat([Entry(0), Entry(1)]).ToList());

        var prefillHandles = handles.Take(8).ToList();
        var longPrompts = prefillHandles.Select((h, i) => (h, (IReadOnlyList<int>)Enumerable.Range(0, 256).Select(t => 200 + ((t * 7 + i) % 5000)).ToArray(), 0)).ToList();
        var prefillBatch = ForwardBatch.Create(longPrompts);
        var prefillMapping = LoraBatchMapping.ForSequences(Enumerable.Repeat(256, 8).ToList(), Enumerable.Range(0, 8).Select(Entry).ToList());

        Dictionary<string, double>? previous = null;
        foreach (var (kernelName, kernel, bf16Only) in Kernels)
        {
            if (bf16Only && dtype != ScalarType.BFloat16)
            {
                yield return previous!.ToDictionary(p => p.Key, _ => double.NaN);   // the variant is the same kernel in float32
                continue;
            }

            // Kernels are fixed per model: a view per kernel over the same weights and adapter arena.
            model = loaded.Model.WithKernels(new Serving.Engine.Kernels.KernelOptions { Lora = kernel });
            using var kernelView = model;
            Console.Error.WriteLine($"{dtype} {kernelName}: decode");
            var (decodeTimes, decodePaired) = InterleavedPaired(steps, () => Time(() => model.Forward(decode, cache).Dispose()),
                () => Time(() => model.Forward(decode, cache, LogitsSelection.LastTokenPerSequence, same).Dispose()),
                () => Time(() => model.Forward(decode, cache, LogitsSelection.LastTokenPerSequence, eight).Dispose()),
                () => Time(() => model.Forward(decode, cache, LogitsSelection.LastTokenPerSequence, all).Dispose()));
            var singleTimes = Interleaved(steps, () => Time(() => model.Forward(single, cache).Dispose()),
                () => Time(() => model.Forward(single, cache, LogitsSelection.LastTokenPerSequence, singleMapping).Dispose()));
            double mixedRatio = double.NaN;
            if (rank >= 16)
            {
                // Mixed ranks in the same arena (padded to the max rank): work follows each slot's own rank.
                var mixed = new[] { 4, 8, 16 }.Select(r => RandomAdapter(model, $"m{r}", (ulong)r, r)).ToList();
                for (int s = 0; s < 32; s++)
                    arena.Load(s, mixed[s % 3]);
                var mixedTimes = Interleaved(steps, () => Time(() => model.Forward(decode, cache).Dispose()),
                    () => Time(() => model.Forward(decode, cache, LogitsSelection.LastTokenPerSequence, all).Dispose()));
                mixedRatio = mixedTimes[1] / mixedTimes[0];
                for (int s = 0; s < 32; s++)
                    arena.Load(s, distinct[s % distinct.Count]);
            }

            var mixedStepTimes = Interleaved(steps, () => Time(() => model.Forward(mixedStep, cache).Dispose()),
                () => Time(() => model.Forward(mixedStep, cache, LogitsSelection.LastTokenPerSequence, mixedStepMapping).Dispose()));
            Console.Error.WriteLine($"{dtype} {kernelName}: prefill");
            // The LoRA kernel alone on one decode step's inputs: every layer's four fused outputs (q/k/v together, o,
            // gate/up together, down), and the same seven projections one call each, interleaved.
            var kernelTimes = Interleaved(steps * 4, () => KernelStep(model, kernel, same, fused: true), () => KernelStep(model, kernel, same, fused: false),
                () => KernelStep(model, kernel, eight, fused: true), () => KernelStep(model, kernel, eight, fused: false),
                () => KernelStep(model, kernel, all, fused: true), () => KernelStep(model, kernel, all, fused: false));
            var stepKernelTimes = Interleaved(steps, () => KernelStep(model, kernel, mixedStepMapping, fused: true),
                () => KernelStep(model, kernel, prefillMapping, fused: true));
            var (prefillTimes, prefillPaired) = InterleavedPaired(Math.Max(5, steps / 4), () => Time(() => model.Forward(prefillBatch, cache).Dispose()),
                () => Time(() => model.Forward(prefillBatch, cache, LogitsSelection.LastTokenPerSequence, prefillMapping).Dispose()));
            // What 32 distinct adapters must read per step beyond the base model, and the ratio that reading alone costs
            // at this machine's measured bandwidth: no kernel can go below it.
            double adapterBytes = Enumerable.Range(0, model.Config.NumLayers).Sum(l => Enum.GetValues<LoraTarget>()
                .Sum(t => (double)(arena.Module(l, t).In + arena.Module(l, t).Out) * rank * (dtype == ScalarType.BFloat16 ? 2 : 4)));
            double Floor(int adapters) => 1 + adapters * adapterBytes / bandwidth / decodeTimes[0];
            previous = new Dictionary<string, double>
            {
                ["base decode step, batch 32"] = decodeTimes[0] * 1e3,
                ["measured memory read bandwidth"] = bandwidth / 1e9,
                ["one adapter for all 32 rows (target ≤ 1.05)"] = decodeTimes[1] / decodeTimes[0],
                ["floor for one adapter: 1 + its bytes / measured bandwidth / base step"] = Floor(1),
                ["8 distinct adapters, 4 rows each (target ≤ 1.10)"] = decodeTimes[2] / decodeTimes[0],
                ["floor for 8 distinct, the same way"] = Floor(8),
                ["32 distinct adapters (target ≤ 1.20)"] = decodeTimes[3] / decodeTimes[0],
                ["same three cases, median of each round's ratio to the base step run just before: one adapter"] = decodePaired[1],
                ["same: 8 distinct"] = decodePaired[2],
                ["same: 32 distinct"] = decodePaired[3],
                ["adapter bytes read per step, 32 distinct"] = 32 * adapterBytes / 1e6,
                ["floor for 32 distinct: 1 + those bytes / measured bandwidth / base step"] = Floor(32),
                ["32 distinct adapters, ranks 4/8/16 mixed in one batch"] = mixedRatio,
                ["base step, 32 decode rows + 2 × 64-token prompts"] = mixedStepTimes[0] * 1e3,
                ["same step, 8 adapters on the decode rows, adapters 0 and 1 on the prompts"] = mixedStepTimes[1] / mixedStepTimes[0],
                ["LoRA kernel alone, that step"] = stepKernelTimes[0] * 1e3,
                ["LoRA kernel alone per decode step, one adapter: projections of one input together"] = kernelTimes[0] * 1e3,
                ["LoRA kernel alone per decode step, one adapter: one projection per call"] = kernelTimes[1] * 1e3,
                ["LoRA kernel alone per decode step, 8 distinct: projections of one input together"] = kernelTimes[2] * 1e3,
                ["LoRA kernel alone per decode step, 8 distinct: one projection per call"] = kernelTimes[3] * 1e3,
                ["LoRA kernel alone per decode step, 32 distinct: projections of one input together"] = kernelTimes[4] * 1e3,
                ["LoRA kernel alone per decode step, 32 distinct: one projection per call"] = kernelTimes[5] * 1e3,
                ["base decode step, batch 1"] = singleTimes[0] * 1e3,
                ["one adapter, batch 1"] = singleTimes[1] / singleTimes[0],
                ["base prefill, 8 × 256 tokens"] = prefillTimes[0] * 1e3,
                ["prefill 8 × 256 tokens, 8 distinct adapters (target ≤ 1.10)"] = prefillTimes[1] / prefillTimes[0],
                ["same, median of each round's ratio"] = prefillPaired[1],
                ["LoRA kernel alone, that prefill"] = stepKernelTimes[1] * 1e3,
            };
            yield return previous;
        }
    }

    private static IReadOnlyList<AdapterSlotWeight> Entry(int slot) => [(slot, 1f)];

    /// <summary>Seconds for the LoRA updates of one step (the mapping's rows) on random inputs of the step's shapes, kernel only.</summary>
    private static double KernelStep(LlamaModel model, ILoraKernel kernel, LoraBatchMapping mapping, bool fused)
    {
        var c = model.Config;
        var arena = model.Adapters!;
        using var scope = NewDisposeScope();
        int rows = mapping.TokenCount;
        var hidden = randn(rows, c.HiddenSize).to(model.Dtype);
        var attention = randn(rows, c.NumHeads * c.HeadDim).to(model.Dtype);
        var intermediate = randn(rows, c.IntermediateSize).to(model.Dtype);
        var outputs = LoraTargets.FusedOutputs.Select(g => zeros(rows, g.Sum(t => LoraTargets.Shape(c, t).Out)).to(model.Dtype)).ToArray();
        var inputs = new[] { hidden, attention, hidden, intermediate };
        return Time(() =>
        {
            for (int layer = 0; layer < c.NumLayers; layer++)
                for (int g = 0; g < LoraTargets.FusedOutputs.Count; g++)
                {
                    var modules = arena.FusedModules(layer, LoraTargets.FusedOutputs[g][0]);
                    if (fused)
                    {
                        kernel.Apply(inputs[g], outputs[g], 0, modules, mapping);
                        continue;
                    }

                    for (int p = 0, offset = 0; p < modules.Count; offset += modules[p].Out, p++)
                        kernel.Apply(inputs[g], outputs[g], offset, modules[p], mapping);
                }
        });
    }

    private static double Time(Action action)
    {
        var sw = Stopwatch.StartNew();
        action();
        return sw.Elapsed.TotalSeconds;
    }

    /// <summary>Runs each variant once per round (after two warm-up rounds); returns each variant's median.</summary>
    private static double[] Interleaved(int rounds, params Func<double>[] variants) => InterleavedPaired(rounds, variants).Medians;

    /// <summary>
    /// <see cref="Interleaved"/>, plus for each variant the median over rounds of its time divided by the first variant's
    /// time in the same round: a ratio of steps run milliseconds apart, which a drift of the host's speed over seconds
    /// (this VM's) moves less than the ratio of the two medians.
    /// </summary>
    private static (double[] Medians, double[] PairedRatios) InterleavedPaired(int rounds, params Func<double>[] variants)
    {
        var samples = variants.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round < rounds + 2; round++)
            for (int v = 0; v < variants.Length; v++)
            {
                double t = variants[v]();
                if (round >= 2)
                    samples[v].Add(t);
            }

        return (samples.Select(Stats.Median).ToArray(),
            samples.Select(s => Stats.Median(s.Select((t, round) => t / samples[0][round]))).ToArray());
    }

    internal static LoraAdapterWeights RandomAdapter(LlamaModel model, string name, ulong seed, int rank)
    {
        var random = new SeededRandom(seed);
        var modules = new List<LoraModuleWeights>();
        for (int layer = 0; layer < model.Config.NumLayers; layer++)
            foreach (var target in LoraTargets.All)
            {
                var (inF, outF) = LoraTargets.Shape(model.Config, target);
                var a = new float[rank * inF];
                var b = new float[outF * rank];
                for (int i = 0; i < a.Length; i++)
                    a[i] = (float)((random.NextDouble() - 0.5) * 0.1);
                for (int i = 0; i < b.Length; i++)
                    b[i] = (float)((random.NextDouble() - 0.5) * 0.1);
                modules.Add(new LoraModuleWeights(layer, target, rank, 2f, a, b));
            }

        return new LoraAdapterWeights(name, modules);
    }
}
