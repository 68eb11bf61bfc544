using Serving.AdapterStore.Peft;
using Serving.Authoring.Synthetic;
using Serving.Authoring.Training;
using Serving.Contracts;
using Serving.Contracts.Generation;
using Serving.Engine.Generation;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Quantization;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// What int8 weights do to the model's answers, float32 compute on both sides: over 1,024 next-token positions (16 prompts
/// of 64 tokens), the mean KL divergence of int8's next-token distribution from float32's; and over float32's greedy
/// 32-token continuations of the same prompts (teacher-forced, so every position sees the same prefix), how often int8's
/// top-1 token is float32's, counted where float32's top-1 probability exceeds its second by more than 0.1. Two models: the
/// bench preset (random weights) and the tiny preset with a LoRA adapter trained by <see cref="LoraTrainer"/> (what
/// <c>train-adapter</c> runs), served on the int8 base.
/// </summary>
internal sealed class Int8QualityBenchmark(string modelDir)
{
    private const int Prompts = 16, PromptTokens = 64, Continuation = 32;
    private const double Margin = 0.1;

    public BenchReport Run()
    {
        var report = new BenchReport("int8 vs float32 next-token distributions (float32 compute)", "bench preset", "tiny + trained LoRA");
        report.Context("positions_per_model", Prompts * PromptTokens);
        report.Context("continuation_tokens", Continuation);
        report.Context("margin", Margin);
        var bench = Measure(modelDir, null);
        var trained = Measure(TrainedModel(out string adapterDir), adapterDir);
        report.Add("mean KL(f32 ‖ int8) per position", "nats", bench.Kl, trained.Kl);
        report.Add("greedy agreement where f32's top-1 margin > 0.1", "%", bench.Agreement * 100, trained.Agreement * 100);
        report.Add("positions with that margin", "count", bench.Counted, trained.Counted);
        report.Add("greedy agreement over every continuation position", "%", bench.AllAgreement * 100, trained.AllAgreement * 100);
        return report;
    }

    private sealed record Quality(double Kl, double Agreement, double Counted, double AllAgreement);

    /// <summary>The tiny preset and an adapter trained on a small domain, generated once into the bench cache.</summary>
    private static string TrainedModel(out string adapterDir)
    {
        string model = Path.Combine(BenchModel.CacheRoot, "tiny-model");
        GeneratedFolder.Ensure(model, staging => SyntheticModelWriter.Write(staging, new SyntheticModelSpec { Preset = ModelPreset.Tiny, Seed = 3 }));
        adapterDir = BenchModel.Derived(model, "int8-quality-trained-lora", staging =>
        {
            using var loaded = LoadedModel.Load(model, ScalarType.Float32, CPU, 512);
            var data = Enumerable.Range(0, 64).Select(i => new TrainingExample(loaded.Tokenizer.Encode($"patient {i % 9} note {i}:"),
                loaded.Tokenizer.Encode(i % 2 == 0 ? " stable, no change, continue the plan" : " improving, reduce the dose tomorrow", addSpecialTokens: false))).ToList();
            new LoraTrainer(loaded, new LoraTrainingOptions { Rank = 8, Alpha = 16, Targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], Steps = 150, BatchSize = 8, LearningRate = 5e-3 })
                .Train(data, staging);
        });
        return model;
    }

    private static Quality Measure(string dir, string? adapterDir)
    {
        using var exact = LoadedModel.Load(dir, ScalarType.Float32, CPU, 512);
        using var int8 = LoadedModel.Load(dir, ScalarType.Float32, CPU, 512, quantization: WeightQuantization.Int8);
        IReadOnlyList<AdapterSlotWeight>? adapter = null;
        if (adapterDir is not null)
        {
            foreach (var m in new[] { exact, int8 })
                m.Model.EnableAdapters(1, 16).Load(0, PeftAdapterReader.Read(adapterDir, "trained", m.Config, 16));
            adapter = [(0, 1f)];
        }

        var prompts = Enumerable.Range(0, Prompts).Select(i => PromptFor(exact, i, adapterDir is not null)).ToList();
        var p = AllLogits(exact.Model, prompts, adapter);
        var q = AllLogits(int8.Model, prompts, adapter);
        double kl = p.Zip(q, Kl).Average();

        var continued = Continue(exact, prompts, adapter);
        var pc = AllLogits(exact.Model, continued, adapter);
        var qc = AllLogits(int8.Model, continued, adapter);
        int counted = 0, agreed = 0, all = 0, allAgreed = 0, row = 0;
        foreach (var sequence in continued)
        {
            for (int t = sequence.Length - Continuation - 1; t < sequence.Length - 1; t++)
            {
                var (top, second) = TopTwo(Softmax(pc[row + t]));
                bool same = ArgMax(qc[row + t]) == ArgMax(pc[row + t]);
                all++;
                allAgreed += same ? 1 : 0;
                if (top.P - second > Margin)
                {
                    counted++;
                    agreed += same ? 1 : 0;
                }
            }

            row += sequence.Length;
        }

        return new Quality(kl, counted == 0 ? double.NaN : (double)agreed / counted, counted, (double)allAgreed / all);
    }

    private static int[] PromptFor(LoadedModel loaded, int i, bool domain)
    {
        if (!domain)
            return EngineBenchmark.Prompt(500 + i, PromptTokens, loaded.Config.VocabSize);
        var tokens = new List<int>();
        for (int j = 0; tokens.Count < PromptTokens; j++)
            tokens.AddRange(loaded.Tokenizer.Encode($"patient {(i + j) % 9} note {i * 7 + j}: stable, no change, continue the plan.", addSpecialTokens: false));
        return [.. tokens.Take(PromptTokens)];
    }

    /// <summary>Float32's greedy continuations: each prompt with <see cref="Continuation"/> tokens appended.</summary>
    private static List<int[]> Continue(LoadedModel loaded, List<int[]> prompts, IReadOnlyList<AdapterSlotWeight>? adapter)
    {
        using var cache = loaded.Model.CreateKvCache(prompts.Count, PromptTokens + Continuation + 8);
        var stepper = new GenerationStepper(loaded.Model, cache);
        var sequences = prompts.Select(p => new SequenceState(p, new SamplingParams { Temperature = 0, MaxTokens = Continuation, IgnoreEos = true },
            loaded.Tokenizer, [], adapter)).ToList();
        while (sequences.Any(s => !s.IsFinished))
            stepper.RunAll(sequences);
        return [.. sequences.Select((s, i) => prompts[i].Concat(s.GeneratedTokens).ToArray())];
    }

    /// <summary>Logits after every token of every sequence, sequence after sequence, as rows of doubles.</summary>
    private static List<double[]> AllLogits(LlamaModel model, List<int[]> sequences, IReadOnlyList<AdapterSlotWeight>? adapter)
    {
        var rows = new List<double[]>();
        foreach (var chunk in sequences.Chunk(4))
        {
            using var cache = model.CreateKvCache(chunk.Length, PromptTokens + Continuation + 8);
            var batch = ForwardBatch.Create(chunk.Select((s, i) => (cache.Partition(i), (IReadOnlyList<int>)s, 0)).ToList());
            var mapping = adapter is null ? null : LoraBatchMapping.ForSequences(chunk.Select(s => s.Length).ToList(), chunk.Select(_ => adapter).ToList());
            using var logits = model.Forward(batch, cache, LogitsSelection.AllTokens, mapping);
            using var host = logits.to(ScalarType.Float64).cpu().contiguous();
            var values = host.data<double>().ToArray();
            int vocab = (int)logits.size(1);
            for (int r = 0; r < logits.size(0); r++)
                rows.Add(values.AsSpan(r * vocab, vocab).ToArray());
        }

        return rows;
    }

    private static double[] Softmax(double[] logits)
    {
        double max = logits.Max();
        var e = logits.Select(v => Math.Exp(v - max)).ToArray();
        double sum = e.Sum();
        return [.. e.Select(v => v / sum)];
    }

    private static double Kl(double[] pLogits, double[] qLogits)
    {
        double[] p = Softmax(pLogits), q = Softmax(qLogits);
        double kl = 0;
        for (int i = 0; i < p.Length; i++)
            if (p[i] > 0)
                kl += p[i] * (Math.Log(p[i]) - Math.Log(Math.Max(q[i], 1e-300)));
        return kl;
    }

    private static ((int Index, double P) Top, double Second) TopTwo(double[] p)
    {
        int best = ArgMax(p);
        double second = p.Where((_, i) => i != best).Max();
        return ((best, p[best]), second);
    }

    private static int ArgMax(double[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best])
                best = i;
        return best;
    }
}
