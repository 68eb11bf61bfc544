using System.Diagnostics;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Generation;
using Serving.Engine.Generation;
using Serving.Engine.Kernels;
using Serving.Engine.Model;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// A mixture-of-experts model's decode steps, engine alone: a Mixtral-style model of the bench preset's shape with 16
/// experts of a quarter of its MLP width, 4 per token — as many active MLP weights as the dense bench preset — against that
/// dense model, and against itself on the per-op path, at B = 1 and B = 8, the three alternated step by step so machine drift
/// cancels. At B = 1 a step reads the attention, the router, 4 experts per layer and the lm_head; its time is set against
/// reading those bytes at the read bandwidth measured in the same run. With <c>--arch gpt-oss</c> the mixture is gpt-oss's of the
/// same shape (biased router and experts, the clamped SwiGLU, attention sinks, every other layer sliding; its experts MXFP4 on
/// disk, held in the compute dtype, or as shipped with <c>--quantization mxfp4</c>).
/// </summary>
internal sealed class MixtureOfExpertsBenchmark(string? denseDir, int steps, ScalarType dtype, string architecture = "MixtralForCausalLM",
    Serving.Engine.Quantization.WeightQuantization quantization = Serving.Engine.Quantization.WeightQuantization.None)
{
    private const int PromptTokens = 64;
    internal const int Experts = 16, PerToken = 4;

    public BenchReport Run()
    {
        string dense = BenchModel.Ensure(denseDir);
        bool gptOss = architecture == "GptOssForCausalLM";
        string moeDir = EnsureModel(architecture);
        using var denseModel = LoadedModel.Load(dense, dtype, CPU, 1024);
        using var moe = LoadedModel.Load(moeDir, dtype, CPU, 1024, quantization: quantization);
        using var perOp = moe.Model.WithKernels(new KernelOptions { FusedCpuDecode = false });
        string name = dtype == ScalarType.BFloat16 ? "bf16" : "f32";
        var w = moe.Model.Weights;
        long expertBytes = w.Layers[0].Experts![0].GateUp.Bytes + w.Layers[0].Experts![0].Down.Bytes;
        long allButEmbed = w.TotalBytes - (w.Tied ? 0 : w.Embed.Bytes);
        long moeStepBytes = allButEmbed - w.Layers.Count(l => l.Experts is not null) * (Experts - PerToken) * expertBytes;
        long denseStepBytes = denseModel.Model.Weights.TotalBytes - (denseModel.Model.Weights.Tied ? 0 : denseModel.Model.Weights.Embed.Bytes);
        var report = new BenchReport($"{(gptOss ? "gpt-oss " : "")}mixture of experts ({Experts} experts, {PerToken} per token) vs the dense bench preset, decode steps ({name}), engine alone, {steps} steps each",
            "B=1", "B=8");
        report.Context("dtype", name);
        report.Context("architecture", architecture);
        report.Context("quantization", Serving.Engine.Quantization.WeightQuantizationNames.Name(quantization));
        report.Context("moe_model_dir", moeDir);
        report.Context("dense_model_dir", dense);
        double bandwidth = Int8ModelBenchmark.ReadBandwidth(2 * w.TotalBytes);
        var results = new[] { 1, 8 }.Select(rows => Measure(denseModel, moe, perOp, rows)).ToList();
        double ReadMs(long bytes) => bytes / bandwidth * 1000;
        report.Add("dense step (p50)", "ms", [.. results.Select(r => (double?)r.Dense)]);
        report.Add("MoE step, fused CPU path (p50)", "ms", [.. results.Select(r => (double?)r.Fused)]);
        report.Add("MoE step, per-op path (p50)", "ms", [.. results.Select(r => (double?)r.PerOp)]);
        report.Add("MoE fused / dense, median of alternating pairs", "x", [.. results.Select(r => (double?)r.FusedPerDense)]);
        report.Add("MoE fused / per-op, median of alternating pairs", "x", [.. results.Select(r => (double?)r.FusedPerOp)]);
        report.Add("read bandwidth (same run)", "GB/s", bandwidth / 1e9, bandwidth / 1e9);
        report.Add("MoE B=1 step / time to read its bytes (attention, router, 4 experts a layer, lm_head)", "x", results[0].Fused / ReadMs(moeStepBytes), null);
        report.Add("dense B=1 step / time to read its bytes", "x", results[0].Dense / ReadMs(denseStepBytes), null);
        report.Add("weights held: dense (B=1 column), MoE (B=8 column)", "MiB", denseModel.Model.Weights.TotalBytes >> 20, w.TotalBytes >> 20);
        report.Add("bytes a B=1 step reads: dense, MoE", "MiB", denseStepBytes >> 20, moeStepBytes >> 20);
        return report;
    }

    /// <summary>The mixture-of-experts bench model of <paramref name="architecture"/> (Mixtral's or gpt-oss's), generated once into the bench cache.</summary>
    public static string EnsureModel(string architecture)
    {
        bool gptOss = architecture == "GptOssForCausalLM";
        string moeDir = Path.Combine(BenchModel.CacheRoot, gptOss ? "bench-gpt-oss-model" : "bench-moe-model");
        if (GeneratedFolder.Ensure(moeDir, staging => SyntheticModelWriter.Write(staging, new SyntheticModelSpec
            {
                Preset = ModelPreset.Bench, Architecture = architecture, Seed = 1, Experts = Experts, ExpertsPerToken = PerToken,
                ExpertIntermediate = ModelPreset.Bench.Intermediate / PerToken / 32 * 32, Mxfp4Experts = gptOss,
            })))
            Console.Error.WriteLine($"generated the mixture-of-experts bench model into {moeDir}");
        return moeDir;
    }

    private sealed record Result(double Dense, double Fused, double PerOp, double FusedPerDense, double FusedPerOp);

    private Result Measure(LoadedModel dense, LoadedModel moe, LlamaModel perOp, int rows)
    {
        var runs = new (LlamaModel Model, LoadedModel Loaded)[] { (dense.Model, dense), (moe.Model, moe), (perOp, moe) };
        var caches = runs.Select(r => r.Model.CreateKvCache(rows, PromptTokens + steps + 16)).ToList();
        try
        {
            var steppers = runs.Select((r, i) => new GenerationStepper(r.Model, caches[i])).ToList();
            var sequences = runs.Select(r => Sequences(r.Loaded, rows)).ToList();
            var times = StepperRuns.Alternate(steppers, sequences, steps);

            return new Result(Stats.Median(times[0]), Stats.Median(times[1]), Stats.Median(times[2]),
                Stats.Median(times[1].Zip(times[0], (m, d) => m / d)), Stats.Median(times[1].Zip(times[2], (f, p) => f / p)));
        }
        finally
        {
            foreach (var cache in caches)
                cache.Dispose();
        }
    }

    private List<SequenceState> Sequences(LoadedModel loaded, int rows) =>
        [.. Enumerable.Range(0, rows).Select(i => new SequenceState(EngineBenchmark.Prompt(7 + i, PromptTokens, loaded.Config.VocabSize),
            new SamplingParams { Temperature = 0, MaxTokens = steps + 8, IgnoreEos = true }, loaded.Tokenizer, []))];
}
