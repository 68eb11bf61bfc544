using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Serving.Authoring.Synthetic;
using Serving.Server;

namespace Serving.Bench;

/// <summary>
/// What keeping sliding layers' KV in groups of their own buys (vLLM's hybrid KV cache manager), on a model of the bench
/// preset's shape (8 layers) with Gemma 3's layers (every sixth whole-context — here layer 5 of 8 — the rest sliding within
/// <c>window</c>) or gpt-oss's (alternating, 16 experts of which 4 per token), bf16, in-process servers started with and without <c>--disable-hybrid-kv-cache-manager</c>:
/// <list type="number">
/// <item>the KV cache's memory at the default sizing for 8 sequences of <c>context</c> tokens (<c>serving_kv_cache_bytes</c>);</item>
/// <item>one KV memory for both (<c>kvTokens</c> positions of every layer) under <c>clients</c> closed-loop clients streaming
/// sequences of 64 prompt tokens and <c>newTokens</c> generated: generated tokens/s, preemptions, and the mean number of
/// running sequences sampled every 100 ms.</item>
/// </list>
/// </summary>
internal sealed partial class SlidingWindowKvBenchmark(string architecture, int window, int context, int clients, int newTokens, int kvTokens, int rounds)
{
    private const int PromptTokens = 64;

    public BenchReport Run()
    {
        string model = EnsureModel();
        var report = new BenchReport($"Sliding-window KV groups: {architecture} layers at the bench preset's shape (window {window}), bf16; "
            + $"{clients} clients × {rounds} sequences of {PromptTokens} + {newTokens} tokens in {kvTokens} positions of KV memory", "every layer every position", "sliding groups", "groups / whole");
        report.Context("model_dir", model);
        double wholeBytes = DefaultKvBytes(model, hybrid: false), hybridBytes = DefaultKvBytes(model, hybrid: true);
        report.Add($"KV cache memory, default sizing (8 sequences of {context})", "MiB", wholeBytes / 1048576, hybridBytes / 1048576, hybridBytes / wholeBytes);
        var whole = Measure(model, hybrid: false);
        var hybrid = Measure(model, hybrid: true);
        report.Add("generated tokens/s", "tok/s", whole.TokensPerSecond, hybrid.TokensPerSecond, hybrid.TokensPerSecond / whole.TokensPerSecond);
        report.Add("mean running sequences", "", whole.MeanRunning, hybrid.MeanRunning, hybrid.MeanRunning / whole.MeanRunning);
        report.Add("preemptions", "", whole.Preemptions, hybrid.Preemptions, null);
        report.Add("KV cache memory of this run", "MiB", whole.KvBytes / 1048576, hybrid.KvBytes / 1048576, hybrid.KvBytes / whole.KvBytes);
        return report;
    }

    private string EnsureModel()
    {
        string dir = Path.Combine(BenchModel.CacheRoot, $"bench-sliding-{architecture}-w{window}-v2");
        if (GeneratedFolder.Ensure(dir, staging =>
            {
                var spec = new SyntheticModelSpec { Preset = ModelPreset.Bench, Architecture = architecture, Seed = 1 };
                SyntheticModelWriter.Write(staging, architecture == "GptOssForCausalLM"
                    ? spec with
                    {
                        Experts = MixtureOfExpertsBenchmark.Experts, ExpertsPerToken = MixtureOfExpertsBenchmark.PerToken, Mxfp4Experts = false,
                        ExpertIntermediate = ModelPreset.Bench.Intermediate / MixtureOfExpertsBenchmark.PerToken / 32 * 32,
                    }
                    : spec with { TieWordEmbeddings = true });
                string path = Path.Combine(staging, "config.json");
                var config = JsonNode.Parse(File.ReadAllText(path))!;
                config["sliding_window"] = window;
                if (architecture == "Gemma3ForCausalLM")
                {
                    // Gemma 3's own pattern (the generator alternates): every sixth layer whole-context.
                    config.AsObject().Remove("layer_types");
                    config["sliding_window_pattern"] = 6;
                }

                File.WriteAllText(path, config.ToJsonString());
            }))
            Console.Error.WriteLine($"generated the sliding-window bench model into {dir}");
        return dir;
    }

    private sealed record Outcome(double TokensPerSecond, double MeanRunning, double Preemptions, double KvBytes);

    private static WebApplication Start(string model, bool hybrid, params string[] more)
    {
        string[] args = ["--urls", "http://127.0.0.1:0", "--model", model, "--model-name", "bench", "--dtype", "bfloat16", "--max-sequences", "8",
            "--Logging:LogLevel:Default", "Warning", .. more];
        var app = ServingApp.Build(hybrid ? args : [.. args, "--disable-hybrid-kv-cache-manager"]);
        app.StartAsync().GetAwaiter().GetResult();
        return app;
    }

    private static HttpClient Client(WebApplication app) => new()
    {
        BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()),
        Timeout = TimeSpan.FromMinutes(30),
    };

    private double DefaultKvBytes(string model, bool hybrid)
    {
        var app = Start(model, hybrid, "--max-context", context.ToString(CultureInfo.InvariantCulture));
        try
        {
            using var http = Client(app);
            StreamedCompletion.Run(http, new { model = "bench", prompt = new[] { 5 }, max_tokens = 1, stream = true });
            return Metrics(http)["serving_kv_cache_bytes"];
        }
        finally
        {
            app.StopAsync().GetAwaiter().GetResult();
            ((IDisposable)app).Dispose();
        }
    }

    private Outcome Measure(string model, bool hybrid)
    {
        var app = Start(model, hybrid, "--max-context", context.ToString(CultureInfo.InvariantCulture), "--kv-cache-tokens", kvTokens.ToString(CultureInfo.InvariantCulture));
        try
        {
            using var http = Client(app);
            StreamedCompletion.Run(http, new { model = "bench", prompt = new[] { 5, 6, 7 }, max_tokens = 8, ignore_eos = true, stream = true });
            long generated = 0;
            var clock = Stopwatch.StartNew();
            // Threads of their own: the clients block on their streams, and the in-process server must keep the pool's threads.
            var workers = Enumerable.Range(0, clients).Select(c => Task.Factory.StartNew(() =>
            {
                for (int r = 0; r < rounds; r++)
                {
                    var prompt = Enumerable.Range(0, PromptTokens).Select(k => 3 + (c * 7919 + r * 104729 + k * 131) % 30000).ToArray();
                    var (_, _, events) = StreamedCompletion.Run(http, new { model = "bench", prompt, max_tokens = newTokens, ignore_eos = true, stream = true });
                    Interlocked.Add(ref generated, events);
                }
            }, TaskCreationOptions.LongRunning)).ToArray();
            var running = new List<double>();
            while (!Task.WaitAll(workers, 100))
                running.Add(Metrics(http)["serving_requests_running"]);
            double seconds = clock.Elapsed.TotalSeconds;
            var end = Metrics(http);
            Console.Error.WriteLine($"sliding-kv bench ({(hybrid ? "groups" : "whole")}): {generated} tokens in {seconds:F1} s, {end["serving_preemptions"]} preemptions");
            return new Outcome(generated / seconds, running.Count == 0 ? 0 : running.Average(), end["serving_preemptions"], end["serving_kv_cache_bytes"]);
        }
        finally
        {
            app.StopAsync().GetAwaiter().GetResult();
            ((IDisposable)app).Dispose();
        }
    }

    private static Dictionary<string, double> Metrics(HttpClient http) =>
        MetricLine().Matches(http.GetStringAsync("/metrics").GetAwaiter().GetResult())
            .GroupBy(m => m.Groups[1].Value).ToDictionary(g => g.Key, g => g.Sum(m => double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)));

    [GeneratedRegex(@"(?m)^([a-z_:]+)(?:\{[^}]*\})? ([0-9.eE+-]+)\s*$")]
    private static partial Regex MetricLine();
}
