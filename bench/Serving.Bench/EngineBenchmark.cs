using System.Diagnostics;
using System.Runtime.InteropServices;
using Serving.Engine.Generation;
using Serving.Engine.Kernels;
using Serving.Engine.Model;
using Serving.Engine.Sampling;
using static TorchSharp.torch;
using Serving.Contracts.Generation;

namespace Serving.Bench;

/// <summary>
/// Decode and prefill throughput of the bench preset in float32 and bfloat16, plus the ratios the engine issue sets
/// targets for: bf16/f32 speed-up at batch 32, decode step vs its projection GEMMs alone, batch-1 decode vs the
/// memory-bandwidth bound.
/// </summary>
internal sealed class EngineBenchmark(string modelDir, int decodeSteps, int promptLength)
{
    private static readonly int[] Batches = [1, 8, 32];
    private static readonly ScalarType[] Dtypes = [ScalarType.Float32, ScalarType.BFloat16];

    public BenchReport Run()
    {
        var report = new BenchReport("Engine: bench preset (hidden 1024, 8 layers, 16/4 heads, vocab 32000), CPU", "float32", "bfloat16");
        report.Context("model_dir", modelDir);
        report.Context("threads", get_num_threads());
        report.Context("decode_steps", decodeSteps);
        report.Context("prompt_tokens_for_decode", promptLength);

        var load = Dtypes.Select(d => LoadMemoryProbe.Measure(modelDir, d == ScalarType.Float32 ? "float32" : "bfloat16")).ToArray();
        double bandwidth = MeasureReadBandwidth();
        report.Context("memory_read_gb_per_s", bandwidth / 1e9);

        var results = Dtypes.Select(d => Measure(d, bandwidth)).ToArray();
        var f32 = results[0];
        var bf16 = results[1];
        var paired = MeasurePaired();
        double maxDiff = f32.ReferenceLogits.Zip(bf16.ReferenceLogits, (a, b) => Math.Abs(a - b)).Max();
        double logitStd = Std(f32.ReferenceLogits);

        foreach (int b in Batches)
            report.Add($"decode tokens/s, batch {b}", "tok/s", f32.DecodeTokensPerSecond[b], bf16.DecodeTokensPerSecond[b]);
        foreach (int b in Batches)
            report.Add($"decode step time, batch {b}", "ms", f32.DecodeStepMs[b], bf16.DecodeStepMs[b]);
        report.Add("prefill tokens/s, one 512-token prompt", "tok/s", f32.PrefillTokensPerSecond, bf16.PrefillTokensPerSecond);
        report.Add("prefill tokens/s, same, libtorch ops only (the CUDA path)", "tok/s", f32.LibtorchOpsPrefillTokensPerSecond, bf16.LibtorchOpsPrefillTokensPerSecond);
        report.Add("bf16 / f32 decode speed-up, batch 32 (target ≥ 3)", "×", null, bf16.DecodeTokensPerSecond[32] / f32.DecodeTokensPerSecond[32]);
        report.Add("same, the two models' steps alternated: median of adjacent pairs' ratios", "×", null, paired.Speedup);
        report.Add("bf16 / f32 decode speed-up, batch 1", "×", null, bf16.DecodeTokensPerSecond[1] / f32.DecodeTokensPerSecond[1]);
        report.Add("bf16 / f32 prefill speed-up", "×", null, bf16.PrefillTokensPerSecond / f32.PrefillTokensPerSecond);
        report.Add("max abs(logit f32 − logit bf16), last token of 4 prompts", "logit", null, maxDiff);
        report.Add("std of f32 logits (scale for the difference above)", "logit", logitStd, null);
        report.Add("projection GEMMs alone, batch 32 (interleaved with the steps)", "ms", f32.GemmMs, bf16.GemmMs);
        report.Add("decode step / its projection GEMMs, batch 32 (target ≤ 1.3)", "×", f32.DecodeStepMs[32] / f32.GemmMs, bf16.DecodeStepMs[32] / bf16.GemmMs);
        report.Add("same, median of each step's ratio to the GEMMs run right after it (steps of both models alternated)", "×",
            paired.F32StepOverGemms, paired.Bf16StepOverGemms);
        report.Add("decode step, batch 32, libtorch ops only: fused attention over gathered K/V, element-wise op chains (the CUDA path)", "ms", f32.LibtorchOpsStepMs, bf16.LibtorchOpsStepMs);
        report.Add("same, / its projection GEMMs", "×", f32.LibtorchOpsStepMs / f32.GemmMs, bf16.LibtorchOpsStepMs / bf16.GemmMs);
        report.Add("decode step, batch 32, temperature 0.8 / top-p 0.95 (random weights: a near-flat distribution, the nucleus is ~95 % of the vocabulary)", "ms",
            f32.SampledStepMs, bf16.SampledStepMs);
        report.Add("same, / the greedy step", "×", f32.SampledStepMs / f32.DecodeStepMs[32], bf16.SampledStepMs / bf16.DecodeStepMs[32]);
        report.Add("bytes read per batch-1 decode step", "MB", f32.BytesPerStep / 1e6, bf16.BytesPerStep / 1e6);
        report.Add("achieved read bandwidth, batch-1 decode", "GB/s", f32.BytesPerStep / (f32.DecodeStepMs[1] / 1e3) / 1e9, bf16.BytesPerStep / (bf16.DecodeStepMs[1] / 1e3) / 1e9);
        report.Add("measured memory read bandwidth", "GB/s", bandwidth / 1e9, bandwidth / 1e9);
        report.Add("bandwidth-bound batch-1 step time", "ms", f32.BytesPerStep / bandwidth * 1e3, bf16.BytesPerStep / bandwidth * 1e3);
        report.Add("batch-1 decode time / bandwidth bound", "×", f32.DecodeStepMs[1] / (f32.BytesPerStep / bandwidth * 1e3), bf16.DecodeStepMs[1] / (bf16.BytesPerStep / bandwidth * 1e3));
        report.Add("weights in memory", "MB", Figure(load[0], "weight_bytes") / 1e6, Figure(load[1], "weight_bytes") / 1e6);
        report.Add("load time (float32 safetensors on disk)", "s", Figure(load[0], "seconds"), Figure(load[1], "seconds"));
        report.Add("peak RSS while loading, above the process baseline", "MB",
            (Figure(load[0], "peak_rss") - Figure(load[0], "baseline_rss")) / 1e6, (Figure(load[1], "peak_rss") - Figure(load[1], "baseline_rss")) / 1e6);
        report.Add("(peak RSS − baseline) / weight bytes (target ≤ 1.3)", "×",
            (Figure(load[0], "peak_rss") - Figure(load[0], "baseline_rss")) / Figure(load[0], "weight_bytes"),
            (Figure(load[1], "peak_rss") - Figure(load[1], "baseline_rss")) / Figure(load[1], "weight_bytes"));
        report.Add("peak RSS / weight bytes, whole process", "×", Figure(load[0], "peak_rss") / Figure(load[0], "weight_bytes"), Figure(load[1], "peak_rss") / Figure(load[1], "weight_bytes"));
        report.Add("process RSS before loading (runtime + libtorch)", "MB", Figure(load[0], "baseline_rss") / 1e6, Figure(load[1], "baseline_rss") / 1e6);
        return report;
    }

    private sealed record DtypeResult(Dictionary<int, double> DecodeTokensPerSecond, Dictionary<int, double> DecodeStepMs,
        double PrefillTokensPerSecond, double LibtorchOpsPrefillTokensPerSecond, double GemmMs, double LibtorchOpsStepMs, double BytesPerStep, float[] ReferenceLogits,
        double SampledStepMs);

    private DtypeResult Measure(ScalarType dtype, double bandwidth)
    {
        Console.Error.WriteLine($"{dtype}: loading");
        using var loaded = LoadedModel.Load(modelDir, dtype, CPU, 4096);
        var model = loaded.Model;
        using var cache = model.CreateKvCache(2 * Batches.Max(), Math.Max(promptLength + 2 * decodeSteps + 16, 520));
        var stepper = new GenerationStepper(model, cache);
        // The same weights with libtorch's attention and element-wise ops: kernels are fixed per model, so a view.
        using var ops = model.WithKernels(new KernelOptions { CpuDecodeAttention = false, CpuElementwise = false });
        var opsStepper = new GenerationStepper(ops, cache);
        WarmUp(model, loaded, stepper);
        var tps = new Dictionary<int, double>();
        var stepMs = new Dictionary<int, double>();
        var gemmMs = new Dictionary<int, double>();
        double fusedStepMs = double.NaN, sampledStepMs = double.NaN;
        foreach (int b in Batches)
        {
            // At the largest batch, the same step for sequences that sample (temperature 0.8, top-p 0.95), interleaved.
            var sampled = b != Batches.Max() ? [] : Enumerable.Range(0, b).Select(i => new SequenceState(Prompt(i + b, promptLength, model.Config.VocabSize),
                new SamplingParams { Temperature = 0.8, TopP = 0.95, Seed = (ulong)i, MaxTokens = 2 * decodeSteps + 8, IgnoreEos = true }, loaded.Tokenizer, [])).ToList();
            var sampledTimes = new List<double>();
            var sequences = Enumerable.Range(0, b).Select(i => new SequenceState(Prompt(i, promptLength, model.Config.VocabSize),
                new SamplingParams { Temperature = 0, MaxTokens = 2 * decodeSteps + 8, IgnoreEos = true }, loaded.Tokenizer, [])).ToList();
            for (int warm = 0; warm < 4; warm++)
            {
                stepper.RunAll(sequences);                // prefill and warm-up decode steps, not timed
                if (sampled.Count > 0)
                    stepper.RunAll(sampled, firstPartition: b);
            }

            var times = new List<double>();
            var gemmTimes = new List<double>();
            var fusedTimes = new List<double>();
            using var gemms = new ProjectionGemms(model, b);
            for (int s = 0; s < decodeSteps; s++)
            {
                var sw = Stopwatch.StartNew();
                stepper.RunAll(sequences);
                times.Add(sw.Elapsed.TotalSeconds);
                // Interleaved with the steps so that both medians see the same machine state (2 shared cores drift).
                sw.Restart();
                gemms.Run();
                gemmTimes.Add(sw.Elapsed.TotalSeconds);
                if (b == Batches.Max())
                {
                    sw.Restart();
                    opsStepper.RunAll(sequences);
                    fusedTimes.Add(sw.Elapsed.TotalSeconds);
                    sw.Restart();
                    stepper.RunAll(sampled, firstPartition: b);
                    sampledTimes.Add(sw.Elapsed.TotalSeconds);
                }
            }

            if (sampledTimes.Count > 0)
                sampledStepMs = Stats.Median(sampledTimes) * 1e3;

            gemmMs[b] = Stats.Median(gemmTimes) * 1e3;
            if (fusedTimes.Count > 0)
                fusedStepMs = Stats.Median(fusedTimes) * 1e3;

            double seconds = Stats.Median(times);             // the median step: robust to a noisy neighbour on a 2-core machine
            tps[b] = b / seconds;
            stepMs[b] = seconds * 1e3;
            Console.Error.WriteLine($"{dtype}: batch {b}: {stepMs[b]:F2} ms/step");
        }

        var prefill = MeasurePrefill(model, ops, cache);
        long bytes = DecodeBytes(model, promptLength + 2 + decodeSteps / 2);
        return new DtypeResult(tps, stepMs, prefill.Kernels, prefill.LibtorchOps, gemmMs[32], fusedStepMs, bytes, ReferenceLogits(model, cache), sampledStepMs);
    }

    /// <summary>
    /// The batch-32 ratios again with every figure paired in time: both models loaded, one decode step of each in turn, each
    /// followed by its projection GEMMs, and the median of the per-pair ratios. The per-dtype passes above run a minute
    /// apart, and this 2-vCPU machine's speed drifts by up to 2× within minutes, which moved their bf16/f32 quotient by
    /// ±0.5 between runs.
    /// </summary>
    private (double Speedup, double F32StepOverGemms, double Bf16StepOverGemms) MeasurePaired()
    {
        Console.Error.WriteLine("both dtypes: alternating batch-32 steps");
        const int batch = 32;
        int steps = 2 * decodeSteps;
        var models = Dtypes.Select(d => LoadedModel.Load(modelDir, d, CPU, 4096)).ToArray();
        var caches = models.Select(m => m.Model.CreateKvCache(batch, promptLength + steps + 16)).ToArray();
        var gemms = models.Select(m => new ProjectionGemms(m.Model, batch)).ToArray();
        try
        {
            var steppers = models.Select((m, k) => new GenerationStepper(m.Model, caches[k])).ToArray();
            var sequences = models.Select(m => Enumerable.Range(0, batch).Select(i => new SequenceState(Prompt(i, promptLength, m.Model.Config.VocabSize),
                new SamplingParams { Temperature = 0, MaxTokens = steps + 8, IgnoreEos = true }, m.Tokenizer, [])).ToList()).ToArray();
            for (int k = 0; k < models.Length; k++)
            {
                WarmUp(models[k].Model, models[k], steppers[k]);
                for (int warm = 0; warm < 4; warm++)
                    steppers[k].RunAll(sequences[k]);
            }

            var speedups = new List<double>();
            var overGemms = new[] { new List<double>(), new List<double>() };
            var stepSeconds = new double[2];
            for (int s = 0; s < steps; s++)
            {
                for (int k = 0; k < models.Length; k++)
                {
                    var sw = Stopwatch.StartNew();
                    steppers[k].RunAll(sequences[k]);
                    stepSeconds[k] = sw.Elapsed.TotalSeconds;
                    sw.Restart();
                    gemms[k].Run();
                    overGemms[k].Add(stepSeconds[k] / sw.Elapsed.TotalSeconds);
                }

                speedups.Add(stepSeconds[0] / stepSeconds[1]);
            }

            return (Stats.Median(speedups), Stats.Median(overGemms[0]), Stats.Median(overGemms[1]));
        }
        finally
        {
            foreach (var g in gemms)
                g.Dispose();
            foreach (var c in caches)
                c.Dispose();
            foreach (var m in models)
                m.Dispose();
        }
    }

    /// <summary>
    /// A few dozen untimed steps first: on this 2-vCPU machine the first hundred milliseconds of libtorch work after
    /// loading run several times slower (thread pools and the host's CPU state settle), which would bias whichever
    /// measurement comes first.
    /// </summary>
    private void WarmUp(LlamaModel model, LoadedModel loaded, GenerationStepper stepper)
    {
        var sequences = Enumerable.Range(0, 8).Select(i => new SequenceState(Prompt(500 + i, promptLength, model.Config.VocabSize),
            new SamplingParams { Temperature = 0, MaxTokens = 40, IgnoreEos = true }, loaded.Tokenizer, [])).ToList();
        while (sequences.Any(s => !s.IsFinished))
            stepper.RunAll(sequences);
    }

    /// <summary>Tokens/s of a 512-token prefill with the CPU kernels, and with libtorch ops only (interleaved).</summary>
    private static (double Kernels, double LibtorchOps) MeasurePrefill(LlamaModel model, LlamaModel ops, KvCache cache)
    {
        var prompt = Prompt(99, 512, model.Config.VocabSize);
        var times = new List<double>();
        var opsTimes = new List<double>();
        for (int rep = 0; rep < 5; rep++)
        {
            foreach (bool kernels in new[] { true, false })
            {
                var sw = Stopwatch.StartNew();
                (kernels ? model : ops).Forward(ForwardBatch.Create([(cache.Partition(0), prompt, 0)]), cache).Dispose();
                (kernels ? times : opsTimes).Add(sw.Elapsed.TotalSeconds);
            }
        }

        return (512 / Stats.Median(times.Skip(1)), 512 / Stats.Median(opsTimes.Skip(1)));
    }

    /// <summary>Bytes one batch-1 decode step must read: every projection and norm weight, the lm_head, one embedding row, the KV prefix.</summary>
    private static long DecodeBytes(LlamaModel model, int context)
    {
        var c = model.Config;
        var w = model.Weights;
        long weights = w.Layers.Sum(l => l.Projections.Sum(p => p.Outputs * p.Inputs * p.ElementSize)
                + new[] { l.InputNorm, l.PostAttentionNorm }.Sum(t => t is null ? 0 : t.NumberOfElements * t.ElementSize))
            + w.LmHead.Outputs * w.LmHead.Inputs * w.LmHead.ElementSize + w.FinalNorm.NumberOfElements * w.FinalNorm.ElementSize
            + (long)c.HiddenSize * w.Embed.ElementSize;
        long kv = 2L * c.NumLayers * c.NumKvHeads * c.HeadDim * context * w.Embed.ElementSize;
        return weights + kv;
    }

    private static float[] ReferenceLogits(LlamaModel model, KvCache cache)
    {
        var batch = ForwardBatch.Create(Enumerable.Range(0, 4).Select(i => (cache.Partition(i), (IReadOnlyList<int>)Prompt(1000 + i, 64, model.Config.VocabSize), 0)).ToList());
        using var logits = model.Forward(batch, cache);
        return MemoryMarshal.Cast<byte, float>(logits.bytes).ToArray();
    }

    /// <summary>Read bandwidth of a 1 GiB float32 sum (libtorch, all threads), best of several.</summary>
    internal static double MeasureReadBandwidth()
    {
        using var big = ones(256L << 20, ScalarType.Float32);
        double best = double.MaxValue;
        for (int rep = 0; rep < 6; rep++)
        {
            var sw = Stopwatch.StartNew();
            big.sum().Dispose();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }

        return big.NumberOfElements * 4.0 / best;
    }

    internal static int[] Prompt(int seed, int length, int vocab)
    {
        var r = new SeededRandom((ulong)seed + 17);
        return Enumerable.Range(0, length).Select(_ => (int)(r.NextUInt64() % (ulong)(vocab - 3))).ToArray();
    }

    private static double Std(float[] values)
    {
        double mean = values.Average(v => (double)v);
        return Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
    }

    private static double Figure(System.Text.Json.Nodes.JsonObject o, string key) => o[key]!.GetValue<double>();
}
