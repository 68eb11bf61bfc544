using System.Diagnostics;
using System.Runtime.Intrinsics;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Generation;
using Serving.Engine.Generation;
using Serving.Engine.Model;
using Serving.Engine.Quantization;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// <c>--quantization int8</c> against the unquantized model in the same compute dtype (bf16 unless told) on the bench preset,
/// engine alone: B = 1 and B = 8 decode steps of both models,
/// alternated step by step so that machine drift cancels, and each int8 step against the time to read its weight bytes at
/// the read bandwidth measured in the same run (every core streaming a buffer twice the weights' size), and against a read
/// pass over a buffer of at least its weight bytes timed right after each int8 step (the median of those pairs).
/// </summary>
internal sealed class Int8ModelBenchmark(string modelDir, int steps, ScalarType dtype)
{
    private const int PromptTokens = 64;

    public BenchReport Run()
    {
        using var bf16 = LoadedModel.Load(modelDir, dtype, CPU, 1024);
        using var int8 = LoadedModel.Load(modelDir, dtype, CPU, 1024, quantization: WeightQuantization.Int8);
        string name = dtype == ScalarType.BFloat16 ? "bf16" : "f32";
        long int8Bytes = int8.Model.Weights.TotalBytes, bf16Bytes = bf16.Model.Weights.TotalBytes;
        // A step reads every weight but the embedding table, of which it looks up a few rows.
        long int8StepBytes = int8Bytes - (int8.Model.Weights.Tied ? 0 : int8.Model.Weights.Embed.Bytes);
        var report = new BenchReport($"int8 vs {name} decode steps ({name} compute), engine alone, bench preset ({int8.Model.Weights.Layers.Count} layers), {steps} steps each",
            "B=1", "B=8");
        report.Context("model_dir", modelDir);
        report.Context("int8_kernel", Int8Linear.Kernel);
        report.Context("dtype", name);
        report.Context("unquantized_weight_mib", bf16Bytes >> 20);
        report.Context("int8_weight_mib", int8Bytes >> 20);
        double bandwidth = ReadBandwidth(2 * bf16Bytes);
        using var probe = new ReadProbe(int8StepBytes);
        var results = new[] { 1, 8 }.Select(rows => Measure(bf16, int8, rows, probe, int8StepBytes)).ToList();
        double ReadMs(long bytes) => bytes / bandwidth * 1000;
        report.Add($"{name} step (p50)", "ms", [.. results.Select(r => (double?)r.Bf16)]);
        report.Add("int8 step (p50)", "ms", [.. results.Select(r => (double?)r.Int8)]);
        report.Add($"int8 / {name}, median of alternating pairs", "x", [.. results.Select(r => (double?)r.Ratio)]);
        report.Add("read bandwidth (same run)", "GB/s", bandwidth / 1e9, bandwidth / 1e9);
        report.Add("time to read a step's int8 weights (all but the embedding table) at that bandwidth", "ms", ReadMs(int8StepBytes), ReadMs(int8StepBytes));
        report.Add("int8 step / that read time", "x", [.. results.Select(r => (double?)(r.Int8 / ReadMs(int8StepBytes)))]);
        report.Add("int8 step / read time of its weights' bytes in a pass beside it, median of pairs", "x", [.. results.Select(r => (double?)r.PairedReadRatio)]);
        report.Add("int8 projection GEMMs alone, the step's shapes (p50, interleaved with the steps)", "ms", [.. results.Select(r => (double?)r.Int8Gemms)]);
        report.Add("int8 step / its GEMMs alone, median of pairs", "x", [.. results.Select(r => (double?)r.StepPerGemms)]);
        foreach (string kind in results[0].KindRates.Keys)
            report.Add($"int8 {kind} GEMMs alone: weight bytes streamed (p50)", "GB/s", [.. results.Select(r => (double?)r.KindRates[kind])]);
        report.Add($"weights held: {name} (B=1 column), int8 (B=8 column)", "MiB", bf16Bytes >> 20, int8Bytes >> 20);
        return report;
    }

    /// <summary>One row count's medians; KindRates: each kind of projection's GEMMs alone (qkv, o, gate_up, down summed over
    /// the layers; lm_head), its weight bytes over its time in GB/s, to set against the read bandwidth.</summary>
    private sealed record Result(double Bf16, double Int8, double Ratio, double PairedReadRatio, double Int8Gemms, double StepPerGemms,
        IReadOnlyDictionary<string, double> KindRates);

    private Result Measure(LoadedModel bf16, LoadedModel int8, int rows, ReadProbe probe, long int8StepBytes)
    {
        using var cacheA = bf16.Model.CreateKvCache(rows, PromptTokens + steps + 16);
        using var cacheB = int8.Model.CreateKvCache(rows, PromptTokens + steps + 16);
        var stepperA = new GenerationStepper(bf16.Model, cacheA);
        var stepperB = new GenerationStepper(int8.Model, cacheB);
        var a = Sequences(bf16, rows);
        var b = Sequences(int8, rows);
        for (int warm = 0; warm < 3; warm++)
        {
            stepperA.RunAll(a);
            stepperB.RunAll(b);
        }

        var timesA = new List<double>();
        var timesB = new List<double>();
        var readRatios = new List<double>();
        var gemmTimes = new List<double>();
        using var gemms = new ProjectionGemms(int8.Model, rows);
        gemms.Run();
        for (int i = 0; i < steps; i++)
        {
            long start = Stopwatch.GetTimestamp();
            stepperA.RunAll(a);
            timesA.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            start = Stopwatch.GetTimestamp();
            stepperB.RunAll(b);
            timesB.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            readRatios.Add(timesB[^1] / (probe.Pass() * 1000 * int8StepBytes / probe.Bytes));
            start = Stopwatch.GetTimestamp();
            gemms.Run();
            gemmTimes.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        var kinds = Enumerable.Range(0, steps).Select(_ => gemms.RunTimed()).ToList();
        var kindRates = kinds[0].Keys.ToDictionary(kind => kind, kind => Stats.Median([.. kinds.Select(k => k[kind].Bytes / k[kind].Seconds / 1e9)]));
        return new Result(Stats.Median(timesA), Stats.Median(timesB), Stats.Median(timesB.Zip(timesA, (q, f) => q / f)), Stats.Median(readRatios),
            Stats.Median(gemmTimes), Stats.Median(timesB.Zip(gemmTimes, (s, g) => s / g)), kindRates);
    }

    private List<SequenceState> Sequences(LoadedModel loaded, int rows) =>
        [.. Enumerable.Range(0, rows).Select(i => new SequenceState(EngineBenchmark.Prompt(7 + i, PromptTokens, loaded.Config.VocabSize),
            new SamplingParams { Temperature = 0, MaxTokens = steps + 8, IgnoreEos = true }, loaded.Tokenizer, []))];

    /// <summary>Bytes per second at which every core sums a buffer of <paramref name="bytes"/> (no cache holds it): the median of seven passes.</summary>
    internal static double ReadBandwidth(long bytes)
    {
        using var probe = new ReadProbe(bytes);
        return Stats.Median([.. Enumerable.Range(0, 7).Select(_ => probe.PassBandwidth())]);
    }
}
