using System.Diagnostics;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Serving.Contracts.Generation;
using Serving.Engine.Generation;
using Serving.Engine.Model;
using Serving.Server;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// One stream through the server against the engine's own B = 1 decode step, alternated in one process so that both see
/// the same machine state (this VM's speed moves by 1.5× within minutes): per round, one streamed REST completion of
/// <c>tokens</c> greedy tokens (its time per output token, from the client's receive times of the SSE events), then the
/// same number of B = 1 decode steps of a second copy of the model, engine alone. The ratio of each round's TPOT to its
/// engine steps' mean (both are means per token, so a pause weighs the same on both sides; the median step is reported
/// beside it), and the server's own mean decode step over the run (<c>serving_engine_step_seconds</c>), are what
/// the figure "server at C = 1 ≤ 1.1× the engine's step" is about.
/// </summary>
internal sealed class OneStreamBenchmark(string modelDir, int rounds, int tokens)
{
    private const int PromptTokens = 64;

    public BenchReport Run()
    {
        var report = new BenchReport($"One stream: REST streaming TPOT vs the engine-alone B=1 step, bench preset (bf16), {rounds} alternating rounds",
            "server", "engine alone", "ratio");
        report.Context("model_dir", modelDir);
        report.Context("tokens_per_round", tokens);
        var app = ServingApp.Build(["--urls", "http://127.0.0.1:0", "--model", modelDir, "--model-name", "bench", "--dtype", "bfloat16",
            "--max-sequences", "32", "--max-context", "512", "--Logging:LogLevel:Default", "Warning"]);
        app.StartAsync().GetAwaiter().GetResult();
        try
        {
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(5) };
            using var loaded = LoadedModel.Load(modelDir, ScalarType.BFloat16, CPU, 1024);
            using var cache = loaded.Model.CreateKvCache(1, PromptTokens + (rounds + 2) * (tokens + 2) + 16);
            var stepper = new GenerationStepper(loaded.Model, cache);

            for (int warm = 0; warm < 2; warm++)
            {
                StreamTpotMs(http, warm);
                EngineStepMs(loaded, stepper, warm);
            }

            var before = EngineSteps.Scrape(http);
            var clock = Stopwatch.StartNew();
            var tpots = new List<double>();
            var engine = new List<double>();
            var engineMedians = new List<double>();
            for (int round = 0; round < rounds; round++)
            {
                tpots.Add(StreamTpotMs(http, 100 + round));
                var (mean, median) = EngineStepMs(loaded, stepper, 100 + round);
                engine.Add(mean);
                engineMedians.Add(median);
            }

            var server = EngineSteps.Scrape(http).Since(before, clock.Elapsed);
            var ratios = tpots.Zip(engine, (t, e) => t / e).ToList();
            double tpot = Stats.Median(tpots), step = Stats.Median(engine);
            report.Add("time per output token (p50 of rounds), vs the engine-alone B=1 step (mean per token, p50 of rounds)", "ms", tpot, step, tpot / step);
            report.Add("the same, median of the rounds' own ratios", "x", null, null, Stats.Median(ratios));
            report.Add("the server's own mean decode step, vs the engine-alone step", "ms", server.MeanDecodeMs, step, server.MeanDecodeMs / step);
            report.Add("the rounds' ratios: lowest (server column), highest (engine column)", "x", ratios.Min(), ratios.Max(), null);
            report.Add("engine-alone B=1 step, median of a round's steps (p50 of rounds)", "ms", null, Stats.Median(engineMedians), null);
        }
        finally
        {
            app.StopAsync().GetAwaiter().GetResult();
            app.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        return report;
    }

    /// <summary>One streamed completion; the mean gap between its token events after the first (ms).</summary>
    private double StreamTpotMs(HttpClient http, int seed)
    {
        var (first, last, events) = StreamedCompletion.Run(http,
            new { model = "bench", prompt = Prompt(seed), max_tokens = tokens, temperature = 0, ignore_eos = true, stream = true });
        return (last - first) / (events - 1);
    }

    /// <summary>
    /// <c>tokens</c> B = 1 decode steps of the engine alone, after the prompt's prefill: their mean (the total over the count,
    /// the same statistic as a stream's time per output token, pauses included) and their median.
    /// </summary>
    private (double Mean, double Median) EngineStepMs(LoadedModel loaded, GenerationStepper stepper, int seed)
    {
        var sequence = new SequenceState(Prompt(seed), new SamplingParams { Temperature = 0, MaxTokens = tokens + 1, IgnoreEos = true }, loaded.Tokenizer, []);
        stepper.RunAll([sequence]);
        var times = new List<double>();
        for (int i = 0; i < tokens; i++)
        {
            long start = Stopwatch.GetTimestamp();
            stepper.RunAll([sequence]);
            times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        return (times.Average(), Stats.Median(times));
    }

    private static int[] Prompt(int seed) => [.. Enumerable.Range(0, PromptTokens).Select(i => 100 + (int)(((ulong)seed * 2654435761UL + (ulong)i * 40503UL) % 30000))];
}
