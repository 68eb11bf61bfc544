using System.Diagnostics;
using Serving.AdapterStore.Peft;
using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// DoRA against the same adapters as plain LoRA, bench preset. Decode: 32 rows, 8 distinct rank-16 adapters on all seven
/// projections (4 rows each), one step with the adapters loaded as LoRA and one with the same A and B plus magnitudes
/// (DoRA), alternated step by step so the machine's drift cancels. Slot fill: one adapter folder on disk (in the page
/// cache) read and copied into a device slot, LoRA and its DoRA twin alternated (a DoRA fill also takes the norms of
/// W + s·B·A over the served base weights). Served cold fill: as the server does it, the norms taken on the thread pool
/// (<see cref="LoraSlotArena.PrepareDora"/>, one worker per core) before the engine loop copies into the slot. Refill: the same
/// adapter objects again, as from the host tier's copy after an eviction (DoRA's scales are kept with that copy). Kept
/// scales: a cold fill after the version's first, its scales read back from the server's cache
/// (<see cref="Serving.Runtime.Generation.DoraScaleFiles"/>) instead of taking the norms.
/// </summary>
internal sealed class DoraBenchmark(string modelDir, int steps, int fills, ScalarType[] dtypes)
{
    private const int Rank = 16, Rows = 32, Distinct = 8;

    public BenchReport Run()
    {
        using var inference = no_grad();
        string lora = BenchModel.Derived(modelDir, "dora-fill-lora", d => SyntheticAdapterWriter.Write(d, modelDir, Rank, 32, SyntheticAdapterWriter.AllTargets, 41));
        string dora = BenchModel.Derived(modelDir, "dora-fill-dora", d => SyntheticAdapterWriter.Write(d, modelDir, Rank, 32, SyntheticAdapterWriter.AllTargets, 41, dora: true));
        var columns = dtypes.Select(d => d == ScalarType.Float32 ? "f32" : "bf16").ToArray();
        var report = new BenchReport($"DoRA vs LoRA: bench preset, {Distinct} rank-{Rank} adapters on all 7 projections, B = {Rows} decode, CPU", columns);
        report.Context("steps", steps);
        report.Context("fills", fills);
        var results = dtypes.Select(d => Measure(d, lora, dora)).ToList();
        foreach (string row in results[0].Keys)
            report.Add(row, row.Contains("ratio", StringComparison.Ordinal) ? "x" : "ms", results.Select(r => (double?)r[row]).ToArray());
        return report;
    }

    private Dictionary<string, double> Measure(ScalarType dtype, string loraDir, string doraDir)
    {
        Console.Error.WriteLine($"dora: {dtype}");
        using var loaded = LoadedModel.Load(modelDir, dtype, CPU, 1024);
        var model = loaded.Model;
        var arena = model.EnableAdapters(2 * Distinct + 1, Rank);
        for (int i = 0; i < Distinct; i++)
        {
            var plain = LoraBenchmark.RandomAdapter(model, $"a{i}", (ulong)i + 1, Rank);
            arena.Load(i, plain);
            arena.Load(Distinct + i, plain with { Name = $"d{i}", Modules = plain.Modules.Select(m => m with { Magnitude = Norms(loaded, m) }).ToList() });
        }

        using var cache = model.CreateKvCache(Rows, 320);
        var handles = Enumerable.Range(0, Rows).Select(cache.Partition).ToList();
        var prompt = Enumerable.Range(0, 64).Select(i => 100 + i).ToArray();
        model.Forward(ForwardBatch.Create(handles.Select(h => (h, (IReadOnlyList<int>)prompt, 0)).ToList()), cache).Dispose();
        var decode = ForwardBatch.Create(handles.Select(h => (h, (IReadOnlyList<int>)new[] { 7 }, 64)).ToList());
        var ones = Enumerable.Repeat(1, Rows).ToList();
        LoraBatchMapping Mapping(int first) =>
            LoraBatchMapping.ForSequences(ones, Enumerable.Range(0, Rows).Select(r => (IReadOnlyList<AdapterSlotWeight>)[(first + r / (Rows / Distinct), 1f)]).ToList());
        var loraMapping = Mapping(0);
        var doraMapping = Mapping(Distinct);
        var loraSteps = new List<double>();
        var doraSteps = new List<double>();
        for (int round = 0; round < steps + 2; round++)
        {
            double l = Time(() => model.Forward(decode, cache, LogitsSelection.LastTokenPerSequence, loraMapping).Dispose());
            double d = Time(() => model.Forward(decode, cache, LogitsSelection.LastTokenPerSequence, doraMapping).Dispose());
            if (round >= 2)
            {
                loraSteps.Add(l);
                doraSteps.Add(d);
            }
        }

        var loraFill = new List<double>();
        var doraFill = new List<double>();
        int slot = 2 * Distinct;
        for (int i = 0; i < fills + 2; i++)
        {
            var (l, d) = Pair(i, () => Time(() => arena.Load(slot, PeftAdapterReader.Read(loraDir, "lora", loaded.Config, Rank))),
                () => Time(() => arena.Load(slot, PeftAdapterReader.Read(doraDir, "dora", loaded.Config, Rank))));
            if (i >= 2)
            {
                loraFill.Add(l);
                doraFill.Add(d);
            }
        }

        // Refills: the same adapter objects again, as the host tier hands a device slot the copy it keeps after an eviction.
        var loraHost = PeftAdapterReader.Read(loraDir, "lora", loaded.Config, Rank);
        var doraHost = PeftAdapterReader.Read(doraDir, "dora", loaded.Config, Rank);
        var loraRefill = new List<double>();
        var doraRefill = new List<double>();
        for (int i = 0; i < fills + 2; i++)
        {
            var (l, d) = Pair(i, () => Time(() => arena.Load(slot, loraHost)), () => Time(() => arena.Load(slot, doraHost)));
            if (i >= 2)
            {
                loraRefill.Add(l);
                doraRefill.Add(d);
            }
        }

        // As the server fills a cold slot: the host tier reads the folder on the thread pool, a DoRA adapter's norms are
        // taken there too (one worker per core), and the engine loop only copies into the slot: what other requests' steps wait for.
        var loraLoop = new List<double>();
        var doraLoop = new List<double>();
        var doraPrepare = new List<double>();
        var doraServed = new List<double>();
        var loraServed = new List<double>();
        for (int i = 0; i < fills + 2; i++)
        {
            LoraAdapterWeights loraRead = null!, doraRead = null!;
            var (readLora, readDora) = Pair(i, () => Time(() => loraRead = PeftAdapterReader.Read(loraDir, "lora", loaded.Config, Rank)),
                () => Time(() => doraRead = PeftAdapterReader.Read(doraDir, "dora", loaded.Config, Rank)));
            double prepare = Time(() => Task.Run(() => arena.PrepareDora(doraRead)).Wait());
            var (l, d) = Pair(i, () => Time(() => arena.Load(slot, loraRead)), () => Time(() => arena.Load(slot, doraRead)));
            if (i >= 2)
            {
                loraLoop.Add(l);
                doraLoop.Add(d);
                doraPrepare.Add(prepare);
                doraServed.Add(readDora + prepare + d);
                loraServed.Add(readLora + l);
            }
        }

        // After the first fill of a version: its scales come back from the server's cache (DoraScaleFiles), not the norms.
        string keptFolder = Path.Combine(Path.GetTempPath(), $"serving-bench-dora-scales-{Guid.NewGuid():N}");
        var kept = new Serving.Runtime.Generation.DoraScaleFiles(keptFolder, "00000000000000be", 1L << 30, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var record = new Serving.AdapterStore.Registry.AdapterRecord(AdapterId.Parse("dora"), doraDir, "00000000d0a5ca1e", DateTimeOffset.UnixEpoch);
        var first = PeftAdapterReader.Read(doraDir, "dora", loaded.Config, Rank);
        kept.Write(record, first, arena.DoraScales(first));
        var keptRead = new List<double>();
        var keptServed = new List<double>();
        var keptLora = new List<double>();
        for (int i = 0; i < fills + 2; i++)
        {
            LoraAdapterWeights loraRead = null!, doraRead = null!;
            var (readLora, readDora) = Pair(i, () => Time(() => loraRead = PeftAdapterReader.Read(loraDir, "lora", loaded.Config, Rank)),
                () => Time(() => doraRead = PeftAdapterReader.Read(doraDir, "dora", loaded.Config, Rank)));
            double scales = Time(() => Task.Run(() => arena.UseDoraScales(doraRead, kept.TryRead(record, doraRead)!)).Wait());
            var (l, d) = Pair(i, () => Time(() => arena.Load(slot, loraRead)), () => Time(() => arena.Load(slot, doraRead)));
            if (i >= 2)
            {
                keptRead.Add(scales);
                keptServed.Add(readDora + scales + d);
                keptLora.Add(readLora + l);
            }
        }

        Directory.Delete(keptFolder, recursive: true);

        return new Dictionary<string, double>
        {
            ["decode step, LoRA (p50)"] = Stats.Median(loraSteps),
            ["decode step, DoRA (p50)"] = Stats.Median(doraSteps),
            ["decode step ratio DoRA / LoRA, median of paired steps (target ≤ 1.05)"] = Stats.Median(doraSteps.Zip(loraSteps, (d, l) => d / l)),
            ["slot fill from disk, LoRA (p50)"] = Stats.Median(loraFill),
            ["slot fill from disk, DoRA (p50; target ≤ 50 ms)"] = Stats.Median(doraFill),
            ["slot fill from disk, DoRA (p99)"] = Stats.Percentile(doraFill, 0.99),
            ["slot fill ratio DoRA / LoRA, median of pairs (target ≤ 2)"] = Stats.Median(doraFill.Zip(loraFill, (d, l) => d / l)),
            ["slot refill from the host copy, LoRA (p50)"] = Stats.Median(loraRefill),
            ["slot refill from the host copy, DoRA (p50)"] = Stats.Median(doraRefill),
            ["slot refill ratio DoRA / LoRA, median of pairs"] = Stats.Median(doraRefill.Zip(loraRefill, (d, l) => d / l)),
            ["served cold fill: DoRA norms on the thread pool, one worker per core (p50)"] = Stats.Median(doraPrepare),
            ["served cold fill: disk → slot, LoRA (p50)"] = Stats.Median(loraServed),
            ["served cold fill: disk → slot, DoRA (p50; target ≤ 50 ms)"] = Stats.Median(doraServed),
            ["served cold fill: disk → slot ratio DoRA / LoRA, median of pairs (target ≤ 2)"] = Stats.Median(doraServed.Zip(loraServed, (d, l) => d / l)),
            ["served cold fill: engine-loop time, LoRA (p50)"] = Stats.Median(loraLoop),
            ["served cold fill: engine-loop time, DoRA (p50)"] = Stats.Median(doraLoop),
            ["served cold fill: engine-loop time ratio DoRA / LoRA, median of pairs"] = Stats.Median(doraLoop.Zip(loraLoop, (d, l) => d / l)),
            ["served cold fill, scales kept on disk: reading them back (p50)"] = Stats.Median(keptRead),
            ["served cold fill, scales kept on disk: disk → slot, LoRA (p50)"] = Stats.Median(keptLora),
            ["served cold fill, scales kept on disk: disk → slot, DoRA (p50; target ≤ 50 ms)"] = Stats.Median(keptServed),
            ["served cold fill, scales kept on disk: disk → slot ratio DoRA / LoRA, median of pairs (target ≤ 2)"] = Stats.Median(keptServed.Zip(keptLora, (d, l) => d / l)),
        };
    }

    /// <summary>
    /// Magnitudes equal to the row norms ‖W + s·B·A‖ (g = 1, as for a DoRA adapter at initialisation): the DoRA rows then
    /// carry the same values as the LoRA rows, so neither step meets values the other does not (tiny magnitudes would
    /// shrink activations into float32 denormals and time those instead).
    /// </summary>
    private static float[] Norms(LoadedModel loaded, LoraModuleWeights m)
    {
        using var scope = NewDisposeScope();
        var (weight, _) = loaded.Model.Weights.Projection(loaded.Config, m.Layer, m.Target);
        int outF = m.B.Length / m.Rank, inF = m.A.Length / m.Rank;
        var merged = weight.to(ScalarType.Float32).Plus(tensor(m.B, [outF, m.Rank]).matmul(tensor(m.A, [m.Rank, inF])).Times(m.Scale));
        return merged.Squared().sum(1).sqrt().data<float>().ToArray();
    }

    /// <summary>
    /// Both measurements of pair <paramref name="index"/>, LoRA first in even pairs and DoRA first in odd ones: the first of
    /// a pair measured slower (it meets the garbage of the pair before), which made DoRA look cheaper than LoRA.
    /// </summary>
    private static (double Lora, double Dora) Pair(int index, Func<double> lora, Func<double> dora)
    {
        if (index % 2 == 0)
        {
            double l = lora();
            return (l, dora());
        }

        double d = dora();
        return (lora(), d);
    }

    private static double Time(Action action)
    {
        var clock = Stopwatch.StartNew();
        action();
        return clock.Elapsed.TotalMilliseconds;
    }
}
