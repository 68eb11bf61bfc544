using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Serving.Authoring.Synthetic;
using Serving.Engine.Sampling;
using Serving.Server;

namespace Serving.Bench;

/// <summary>
/// End-to-end serving throughput through the real server on loopback: bench preset, 8 rank-16 adapters with Zipf(1.0)
/// popularity, 64-token prompts for 64 new tokens (streamed). C clients each wait an exponentially distributed think
/// time before every request, so arrivals are Poisson-like and bursty rather than lock-step. Compares the continuous
/// adapter-aware policy with the per-adapter baseline (llama.cpp-style batches) and with base-model-only traffic.
/// </summary>
/// <param name="modelDir">The bench-preset model folder.</param>
/// <param name="requestsPerClient">Requests each client sends per concurrency level.</param>
/// <param name="meanThinkMs">Mean exponential think time before each request.</param>
/// <param name="concurrency">Client counts to measure (1, 8, 32, 64 by default).</param>
/// <param name="rounds">Times each configuration runs at each concurrency, the configurations taking turns; figures pool all rounds.</param>
/// <param name="device">The servers' device (<c>cpu</c>, <c>cuda</c>, <c>cuda:N</c>).</param>
internal sealed class ServingBenchmark(string modelDir, int requestsPerClient, double meanThinkMs, int[] concurrency, int rounds = 1, string device = "cpu")
{
    private const string BaseModelName = "bench-model";

    private int[] Concurrency => concurrency;

    public BenchReport Run()
    {
        string adapters = BenchModel.Derived(modelDir, "zipf-adapters-8", staging =>
        {
            for (int i = 0; i < 8; i++)
                SyntheticAdapterWriter.Write(Path.Combine(staging, $"zipf-{i}"), modelDir, 16, 32, SyntheticAdapterWriter.AllTargets, (ulong)(100 + i));
        });
        var report = new BenchReport("Serving end to end: bench preset (bf16), 8 rank-16 adapters, Zipf(1.0), 64+64 tokens, Poisson arrivals",
            [.. Concurrency.Select(c => $"C={c}")]);
        report.Context("requests_per_client", requestsPerClient);
        report.Context("mean_think_ms", meanThinkMs);
        report.Context("rounds", rounds);
        report.Context("device", device);
        var measured = Measure(adapters, [("Continuous", true), ("PerAdapter", true), ("Continuous", false)]);
        var (continuous, perAdapter, baseOnly) = (measured[0], measured[1], measured[2]);
        Add(report, "continuous adapter-aware", continuous);
        Add(report, "per-adapter baseline", perAdapter);
        Add(report, "base model only", baseOnly);
        report.Add("continuous / per-adapter throughput (target ≥ 4 at C=32)", "×", Concurrency.Select(c => (double?)(continuous[c].TokensPerSecond / perAdapter[c].TokensPerSecond)).ToArray());
        report.Add("continuous mixed-adapter / base-only throughput (target ≥ 0.9)", "×", Concurrency.Select(c => (double?)(continuous[c].TokensPerSecond / baseOnly[c].TokensPerSecond)).ToArray());
        return report;
    }

    private sealed record Result(double TokensPerSecond, double TtftP50, double TtftP99, double TpotP50, double TpotP99, EngineSteps Steps, ProcessActivity Activity);

    /// <summary>One round of one configuration: what <see cref="Pool"/> turns into a <see cref="Result"/>.</summary>
    private sealed record Sample(long Tokens, double Seconds, IReadOnlyList<double> Ttft, IReadOnlyList<double> Tpot, EngineSteps Steps, ProcessActivity Activity);

    private static Result Pool(IReadOnlyList<Sample> samples)
    {
        var ttft = samples.SelectMany(s => s.Ttft).ToList();
        var tpot = samples.SelectMany(s => s.Tpot).ToList();
        var steps = samples.Skip(1).Aggregate(samples[0].Steps, (sum, s) => sum.Plus(s.Steps));
        var activity = samples.Skip(1).Aggregate(samples[0].Activity, (sum, s) => sum.Plus(s.Activity));
        return new Result(samples.Sum(s => s.Tokens) / samples.Sum(s => s.Seconds), Stats.Percentile(ttft, 0.5), Stats.Percentile(ttft, 0.99),
            Stats.Percentile(tpot, 0.5), Stats.Percentile(tpot, 0.99), steps, activity);
    }

    private void Add(BenchReport report, string name, Dictionary<int, Result> r)
    {
        report.Add($"{name}: generated tokens/s", "tok/s", Concurrency.Select(c => (double?)r[c].TokensPerSecond).ToArray());
        report.Add($"{name}: TTFT p50", "ms", Concurrency.Select(c => (double?)r[c].TtftP50).ToArray());
        report.Add($"{name}: TTFT p99", "ms", Concurrency.Select(c => (double?)r[c].TtftP99).ToArray());
        report.Add($"{name}: TPOT p50", "ms", Concurrency.Select(c => (double?)r[c].TpotP50).ToArray());
        report.Add($"{name}: TPOT p99", "ms", Concurrency.Select(c => (double?)r[c].TpotP99).ToArray());
        report.Add($"{name}: engine steps", "", Concurrency.Select(c => (double?)r[c].Steps.Count).ToArray());
        report.Add($"{name}: mean decode step", "ms", Concurrency.Select(c => (double?)r[c].Steps.MeanDecodeMs).ToArray());
        report.Add($"{name}: mean prefill step", "ms", Concurrency.Select(c => (double?)r[c].Steps.MeanPrefillMs).ToArray());
        report.Add($"{name}: sequences per step", "", Concurrency.Select(c => (double?)r[c].Steps.SequencesPerStep).ToArray());
        report.Add($"{name}: tokens per step", "", Concurrency.Select(c => (double?)r[c].Steps.TokensPerStep).ToArray());
        report.Add($"{name}: engine busy", "%", Concurrency.Select(c => (double?)r[c].Steps.BusyPercent).ToArray());
        report.Add($"{name}: per step: forward call", "ms", Concurrency.Select(c => (double?)r[c].Steps.MeanPartsMs.Forward).ToArray());
        report.Add($"{name}: per step: device wait + logits to host", "ms", Concurrency.Select(c => (double?)r[c].Steps.MeanPartsMs.LogitsToHost).ToArray());
        report.Add($"{name}: per step: sampling", "ms", Concurrency.Select(c => (double?)r[c].Steps.MeanPartsMs.Sampling).ToArray());
        report.Add($"{name}: prompt tokens served from the prefix cache", "%", Concurrency.Select(c => (double?)r[c].Steps.PrefixHitPercent).ToArray());
        report.Add($"{name}: GC pauses (whole process)", "% of wall", Concurrency.Select(c => (double?)r[c].Activity.PausePercent).ToArray());
        report.Add($"{name}: GCs per 1000 tokens", "", Concurrency.Select(c => (double?)r[c].Activity.PerThousand(r[c].Steps.Tokens)).ToArray());
        report.Add($"{name}: process CPU (servers, engine and clients), cores busy on average", "cores", Concurrency.Select(c => (double?)r[c].Activity.CoresBusy).ToArray());
    }

    /// <summary>
    /// One in-process server per configuration, all started first; then for each concurrency level every configuration
    /// runs in turn, so the three figures a ratio divides are taken seconds apart rather than minutes (this 2-vCPU machine's
    /// speed drifts by 1.5–2× over minutes). With several rounds the turns repeat and each figure pools its rounds, so a
    /// slow spell during one configuration's turn weighs less.
    /// </summary>
    private List<Dictionary<int, Result>> Measure(string adapters, (string Policy, bool UseAdapters)[] configurations)
    {
        var servers = new List<(WebApplication App, HttpClient Http, bool UseAdapters)>();
        try
        {
            foreach (var (policy, useAdapters) in configurations)
            {
                Console.Error.WriteLine($"serving: starting policy {policy}, adapters {useAdapters}");
                var app = ServingApp.Build(["--urls", "http://127.0.0.1:0", "--model", modelDir, "--model-name", BaseModelName, "--adapters", adapters, "--dtype", "bfloat16", "--device", device,
                    "--max-sequences", Math.Max(64, Concurrency.Max()).ToString(System.Globalization.CultureInfo.InvariantCulture), "--max-context", "256", "--max-adapter-slots", "8",
                    "--batching-policy", policy, "--Logging:LogLevel:Default", "Warning"]);
                app.StartAsync().GetAwaiter().GetResult();
                string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
                servers.Add((app, new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(10) }, useAdapters));
                // Warm-up long enough for tiered JIT to finish on the hot paths and every adapter to reach a slot.
                RunClients(servers[^1].Http, 16, 2, useAdapters, 0, new SeededRandom(1), run: 0);
            }

            var results = servers.Select(_ => new Dictionary<int, Result>()).ToList();
            foreach (var (c, level) in Concurrency.Select((c, level) => (c, level)))
            {
                var samples = servers.Select(_ => new List<Sample>()).ToList();
                for (int round = 0; round < rounds; round++)
                    for (int i = 0; i < servers.Count; i++)
                    {
                        Console.Error.WriteLine($"serving: C={c}, round {round + 1}/{rounds}, {configurations[i].Policy}, adapters {configurations[i].UseAdapters}");
                        var before = EngineSteps.Scrape(servers[i].Http);
                        var activityBefore = ProcessActivity.Now();
                        var wall = Stopwatch.StartNew();
                        var sample = RunClients(servers[i].Http, c, Math.Max(requestsPerClient, 8 / c), servers[i].UseAdapters, meanThinkMs,
                            new SeededRandom((ulong)(c + 1000 * round)), run: 1 + level * rounds + round);
                        samples[i].Add(sample with { Steps = EngineSteps.Scrape(servers[i].Http).Since(before, wall.Elapsed), Activity = ProcessActivity.Now().Since(activityBefore, wall.Elapsed) });
                    }

                for (int i = 0; i < servers.Count; i++)
                    results[i][c] = Pool(samples[i]);
            }

            return results;
        }
        finally
        {
            foreach (var (app, http, _) in servers)
            {
                http.Dispose();
                app.StopAsync().GetAwaiter().GetResult();
                ((IDisposable)app).Dispose();
            }
        }
    }

    /// <summary>
    /// <paramref name="clients"/> clients sending <paramref name="requestsEach"/> requests each. Every prompt begins with a
    /// token that names the <paramref name="run"/>, so no run finds another run's prompts (the warm-up's included) in the
    /// prefix cache: base-only traffic would find every one of them there and adapter traffic only those that drew the
    /// same adapter, which made the base-only runs faster by skipping prefills the others paid.
    /// </summary>
    private static Sample RunClients(HttpClient http, int clients, int requestsEach, bool useAdapters, double meanThinkMs, SeededRandom random, int run)
    {
        var models = Enumerable.Range(0, clients * requestsEach).Select(_ => useAdapters ? $"zipf-{Zipf(random, 8)}" : BaseModelName).ToArray();
        // Same seed for every configuration: the three runs see the same adapters and the same arrival gaps.
        var thinkMs = Enumerable.Range(0, clients * requestsEach).Select(_ => -Math.Log(1 - random.NextDouble()) * meanThinkMs).ToArray();
        var ttft = new System.Collections.Concurrent.ConcurrentBag<double>();
        var tpot = new System.Collections.Concurrent.ConcurrentBag<double>();
        long tokens = 0;
        var wall = Stopwatch.StartNew();
        Task.WaitAll(Enumerable.Range(0, clients).Select(client => Task.Run(async () =>
        {
            for (int r = 0; r < requestsEach; r++)
            {
                string model = models[client * requestsEach + r];
                await Task.Delay(TimeSpan.FromMilliseconds(thinkMs[client * requestsEach + r]));
                var prompt = Enumerable.Range(0, 64).Select(t => t == 0 ? 20100 + run : 100 + ((t * 31 + client * 7 + r) % 20000)).ToArray();
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
                {
                    Content = JsonContent.Create(new { model, prompt, max_tokens = 64, temperature = 0, ignore_eos = true, stream = true }),
                };
                var sw = Stopwatch.StartNew();
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                double first = -1, last = 0;
                int count = 0;
                while (await reader.ReadLineAsync() is string line)
                {
                    if (!line.StartsWith("data: {", StringComparison.Ordinal))
                        continue;
                    last = sw.Elapsed.TotalMilliseconds;
                    if (first < 0)
                        first = last;
                    count++;
                }

                if (count == 0)
                    throw new InvalidOperationException($"request for {model} returned no tokens (HTTP {(int)response.StatusCode})");
                ttft.Add(first);
                if (count > 1)
                    tpot.Add((last - first) / (count - 1));
                Interlocked.Add(ref tokens, count);
            }
        })).ToArray());
        return new Sample(tokens, wall.Elapsed.TotalSeconds, ttft.ToList(), tpot.ToList(), EngineSteps.None, ProcessActivity.None);
    }

    private static int Zipf(SeededRandom random, int n)
    {
        double total = Enumerable.Range(1, n).Sum(k => 1.0 / k), u = random.NextDouble() * total;
        for (int k = 1; k <= n; k++)
            if ((u -= 1.0 / k) < 0)
                return k - 1;
        return n - 1;
    }
}
