using System.Diagnostics;
using Serving.AdapterStore.Peft;
using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Contracts.Generation;
using Serving.Engine.Generation;
using Serving.Engine.Kernels;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// What an adapter of a mixture of experts' experts costs a decode step, engine alone, on the mixture-of-experts bench model
/// (<see cref="MixtureOfExpertsBenchmark"/>'s; gpt-oss's with <c>--arch gpt-oss</c>): the base; an adapter of the attention
/// (q/k/v/o); an adapter of the attention and every expert of every layer (PEFT's files, read as the server reads them) —
/// all three on the fused CPU decode path — and that adapter per op. All rows of a step use the step's adapter; the four
/// alternate step by step, at B = 1 and 8.
/// </summary>
internal sealed class ExpertAdapterBenchmark(int steps, ScalarType dtype, string architecture, int rank)
{
    private const int PromptTokens = 64;

    public BenchReport Run()
    {
        string moeDir = MixtureOfExpertsBenchmark.EnsureModel(architecture);
        string adapters = Path.Combine(BenchModel.CacheRoot, $"bench-expert-adapters-{architecture}-r{rank}");
        var config = Serving.Contracts.Configuration.ModelConfig.Load(Path.Combine(moeDir, "config.json"));
        var sparse = Enumerable.Range(0, config.NumLayers).Where(config.Experts!.IsSparse).ToArray();
        GeneratedFolder.Ensure(Path.Combine(adapters, "attention"), staging => SyntheticAdapterWriter.Write(staging, moeDir, rank, 2 * rank, ["q_proj", "k_proj", "v_proj", "o_proj"], 3));
        GeneratedFolder.Ensure(Path.Combine(adapters, "experts"), staging => SyntheticExpertAdapterWriter.Write(staging, moeDir, rank, 2 * rank, sparse, 4,
            attention: ["q_proj", "k_proj", "v_proj", "o_proj"]));
        using var moe = LoadedModel.Load(moeDir, dtype, CPU, 1024);
        var arena = moe.Model.EnableAdapters(slots: 2, maxRank: rank);
        long before = arena.Bytes;
        arena.Load(0, PeftAdapterReader.Read(Path.Combine(adapters, "attention"), "attention", config, rank));
        arena.Load(1, PeftAdapterReader.Read(Path.Combine(adapters, "experts"), "experts", config, rank));
        using var perOp = moe.Model.WithKernels(new KernelOptions { FusedCpuDecode = false });
        string name = dtype == ScalarType.BFloat16 ? "bf16" : "f32";
        var report = new BenchReport($"an adapter of every expert vs one of the attention, {architecture} bench model ({config.Experts.Experts} experts, {config.Experts.TopK} per token), rank {rank}, decode steps ({name}), engine alone, {steps} steps each",
            "B=1", "B=8");
        report.Context("dtype", name);
        report.Context("architecture", architecture);
        report.Context("rank", rank);
        report.Context("moe_model_dir", moeDir);
        var results = new[] { 1, 8 }.Select(rows => Measure(moe, perOp, rows)).ToList();
        report.Add("base step, fused CPU path (p50)", "ms", [.. results.Select(r => (double?)r.Median[0])]);
        report.Add("attention adapter step, fused CPU path (p50)", "ms", [.. results.Select(r => (double?)r.Median[1])]);
        report.Add("expert + attention adapter step, fused CPU path (p50)", "ms", [.. results.Select(r => (double?)r.Median[2])]);
        report.Add("expert + attention adapter step, per op (p50)", "ms", [.. results.Select(r => (double?)r.Median[3])]);
        report.Add("expert adapter / attention adapter, median of alternating pairs", "x", [.. results.Select(r => (double?)r.ExpertPerAttention)]);
        report.Add("expert adapter / base", "x", [.. results.Select(r => (double?)r.ExpertPerBase)]);
        report.Add("expert adapter: fused / per op", "x", [.. results.Select(r => (double?)r.FusedPerOp)]);
        report.Add("adapter slots held: two slots before (B=1 column), after the expert adapter's slots were made (B=8 column)", "MiB", before >> 20, arena.Bytes >> 20);
        return report;
    }

    private sealed record Result(double[] Median, double ExpertPerAttention, double ExpertPerBase, double FusedPerOp);

    private Result Measure(LoadedModel moe, LlamaModel perOp, int rows)
    {
        IReadOnlyList<AdapterSlotWeight>[] adapterOf = [[], [(0, 1f)], [(1, 1f)], [(1, 1f)]];
        var runs = new[] { moe.Model, moe.Model, moe.Model, perOp };
        var caches = runs.Select(r => r.CreateKvCache(rows, PromptTokens + steps + 16)).ToList();
        try
        {
            var steppers = runs.Select((r, i) => new GenerationStepper(r, caches[i])).ToList();
            var sequences = adapterOf.Select(a => Enumerable.Range(0, rows).Select(i => new SequenceState(EngineBenchmark.Prompt(7 + i, PromptTokens, moe.Config.VocabSize),
                new SamplingParams { Temperature = 0, MaxTokens = steps + 8, IgnoreEos = true }, moe.Tokenizer, [], a)).ToList()).ToList();
            var times = StepperRuns.Alternate(steppers, sequences, steps);

            return new Result([.. times.Select(Stats.Median)], Stats.Median(times[2].Zip(times[1], (e, a) => e / a)),
                Stats.Median(times[2].Zip(times[0], (e, b) => e / b)), Stats.Median(times[2].Zip(times[3], (f, p) => f / p)));
        }
        finally
        {
            foreach (var cache in caches)
                cache.Dispose();
        }
    }
}
