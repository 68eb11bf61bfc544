using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Generation;
using Serving.Engine.Constraints;
using Serving.Engine.Tokenization;
using Serving.Server;

namespace Serving.Bench;

/// <summary>
/// Structured output's cost. Compile: the clinical-record schema against the bench preset's 32,000-token vocabulary, cold
/// (a new compiler; the vocabulary trie, built once per server, reported apart) and warm (a cache hit). Serving: C
/// closed-loop clients on one in-process bf16 server with 8 adapters, every request constrained by the clinical schema,
/// against the same requests unconstrained with max_tokens set to each one's constrained output length (ignore_eos), so
/// both rounds generate the same tokens for the same prompts and adapters. Rounds alternate; the first constrained round
/// meets uncached token masks and is reported apart.
/// </summary>
internal sealed class StructuredOutputBenchmark(string modelDir, int clients, int requestsEach, int rounds)
{
    private const string BaseModelName = "bench-model";
    private const int PromptTokens = 64;

    public BenchReport Run()
    {
        string adapters = BenchModel.Derived(modelDir, "zipf-adapters-8", staging =>
        {
            for (int i = 0; i < 8; i++)
                SyntheticAdapterWriter.Write(Path.Combine(staging, $"zipf-{i}"), modelDir, 16, 32, SyntheticAdapterWriter.AllTargets, (ulong)(100 + i));
        });
        string schema = ClinicalSchema();
        var report = new BenchReport($"Structured output: clinical-record schema, bench preset (bf16), 8 rank-16 adapters round-robin, C = {clients}",
            "constrained", "unconstrained", "ratio");
        report.Context("requests_per_round", clients * requestsEach);
        report.Context("rounds", rounds);
        Compile(report, schema);

        var app = ServingApp.Build(["--urls", "http://127.0.0.1:0", "--model", modelDir, "--model-name", BaseModelName, "--adapters", adapters, "--dtype", "bfloat16",
            "--max-sequences", Math.Max(64, clients).ToString(System.Globalization.CultureInfo.InvariantCulture), "--max-context", "1024", "--max-adapter-slots", "8",
            "--Logging:LogLevel:Default", "Warning"]);
        app.StartAsync().GetAwaiter().GetResult();
        try
        {
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(20) };
            RunRound(http, null, Enumerable.Repeat(16, clients).ToArray(), 999);           // warm-up: JIT and every adapter in a slot
            Flood(report, http);
            if (rounds == 0)
                return report;

            var constrained = new List<Round>();
            var free = new List<Round>();
            for (int round = 0; round < rounds + 1; round++)
            {
                Console.Error.WriteLine($"structured: round {round + 1}/{rounds + 1}");
                var c = RunRound(http, schema, null, round);
                var f = RunRound(http, null, c.Lengths, round);
                constrained.Add(c);
                free.Add(f);
            }

            var cold = constrained[0];
            report.Add("first round (token masks not cached yet): generated tokens/s", "tok/s", cold.TokensPerSecond, free[0].TokensPerSecond, cold.TokensPerSecond / free[0].TokensPerSecond);
            var warmC = constrained.Skip(1).ToList();
            var warmF = free.Skip(1).ToList();
            double tc = warmC.Sum(r => r.Tokens) / warmC.Sum(r => r.Seconds), tf = warmF.Sum(r => r.Tokens) / warmF.Sum(r => r.Seconds);
            report.Add("later rounds: generated tokens/s (target ratio ≥ 0.9)", "tok/s", tc, tf, tc / tf);
            report.Add("later rounds: median of the rounds' own ratios", "x", null, null, Stats.Median(warmC.Zip(warmF, (a, b) => a.TokensPerSecond / b.TokensPerSecond)));
            report.Add("later rounds: mean decode step", "ms", Mean(warmC, r => r.Steps.MeanDecodeMs), Mean(warmF, r => r.Steps.MeanDecodeMs),
                Mean(warmC, r => r.Steps.MeanDecodeMs) / Mean(warmF, r => r.Steps.MeanDecodeMs));
            report.Add("later rounds: engine steps", "", warmC.Sum(r => r.Steps.Count), warmF.Sum(r => r.Steps.Count), warmC.Sum(r => r.Steps.Count) / warmF.Sum(r => r.Steps.Count));
            report.Add("later rounds: engine busy (share of the round's wall time in steps)", "%", Mean(warmC, r => r.Steps.BusyPercent), Mean(warmF, r => r.Steps.BusyPercent), null);
            report.Add("later rounds: per step, sampling (masked sampling included)", "ms", Mean(warmC, r => r.Steps.MeanPartsMs.Sampling), Mean(warmF, r => r.Steps.MeanPartsMs.Sampling), null);
            report.Add("per step: token-mask work beside the forward pass, first round / later rounds", "ms", cold.Steps.MeanMaskMs.Work, Mean(warmC, r => r.Steps.MeanMaskMs.Work), null);
            report.Add("per step: waiting for masks after the forward pass, first round / later rounds", "ms", cold.Steps.MeanMaskMs.Wait, Mean(warmC, r => r.Steps.MeanMaskMs.Wait), null);
            report.Add("generated tokens per request (mean)", "tokens", warmC.Average(r => r.Tokens / (double)r.Lengths.Length), warmF.Average(r => r.Tokens / (double)r.Lengths.Length), null);
            report.Add("constrained outputs that parse as JSON and ended with stop", "%", 100.0 * constrained.Sum(r => r.Valid) / constrained.Sum(r => r.Lengths.Length), null, null);
        }
        finally
        {
            app.StopAsync().GetAwaiter().GetResult();
            app.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        return report;
    }

    private static double Mean(List<Round> rounds, Func<Round, double> value) => rounds.Average(value);

    private void Compile(BenchReport report, string schema)
    {
        var tokenizer = HfTokenizer.Load(modelDir);
        var clock = Stopwatch.StartNew();
        var compiler = new TokenConstraintCompiler(tokenizer, tokenizer.VocabSize);
        var trieWarm = compiler.Compile(OutputConstraint.Regex("x"));                          // builds the shared vocabulary trie
        double trieMs = clock.Elapsed.TotalMilliseconds;
        clock.Restart();
        var compiled = compiler.Compile(OutputConstraint.JsonSchema(schema));
        double coldMs = clock.Elapsed.TotalMilliseconds;
        clock.Restart();
        compiled.AllowedTokens(compiled.Start);
        double firstMaskMs = clock.Elapsed.TotalMilliseconds;
        var warm = new List<double>();
        for (int i = 0; i < 1000; i++)
        {
            clock.Restart();
            compiler.Compile(OutputConstraint.JsonSchema(schema));
            warm.Add(clock.Elapsed.TotalMilliseconds);
        }

        report.Add($"vocabulary trie build, once per server ({tokenizer.VocabSize:N0} tokens)", "ms", trieMs, null, null);
        report.Add("schema compile, cold (parse, automaton)", "ms", coldMs, null, null);
        report.Add("schema compile, warm (cached; target ≤ 1 ms), p50", "ms", Stats.Median(warm), null, null);
        report.Add("schema compile, warm, p99", "ms", Stats.Percentile(warm, 0.99), null, null);
        report.Add("first token mask (start state: a walk of the whole vocabulary)", "ms", firstMaskMs, null, null);

        // A tenant's pattern built up to the automaton's state bound and refused: the most one request can make a build cost.
        var hostile = OutputConstraint.Regex(HostilePattern(0));
        clock.Restart();
        var refused = Assert400(() => compiler.Compile(hostile));
        double refusedColdMs = clock.Elapsed.TotalMilliseconds;
        clock.Restart();
        Assert400(() => compiler.Compile(hostile));
        double refusedAgainMs = clock.Elapsed.TotalMilliseconds;
        report.Add($"hostile pattern {HostilePattern(0)}, built to the state bound and refused", "ms", refusedColdMs, null, null);
        report.Add("the same pattern again (the refusal remembered)", "ms", refusedAgainMs, null, null);
        report.Context("hostile_refusal", refused);
        GC.KeepAlive(trieWarm);
    }

    /// <summary>A regex that expands past the automaton's state bound; <paramref name="variant"/> makes each one new to the cache.</summary>
    private static string HostilePattern(int variant) => $"(x{{1000}}){{{600 + variant}}}";

    private static string Assert400(Action compile)
    {
        try
        {
            compile();
        }
        catch (ConstraintException ex)
        {
            return ex.Problem;
        }

        throw new InvalidOperationException("the hostile pattern was not refused");
    }

    /// <summary>
    /// A plain request's latency alone and while <see cref="FloodRequests"/> requests with new hostile patterns (each built
    /// to the state bound, then refused) arrive at once: what one tenant's cold constraints cost everyone else.
    /// </summary>
    private static void Flood(BenchReport report, HttpClient http)
    {
        async Task<double> Plain(int i)
        {
            var clock = Stopwatch.StartNew();
            using var response = await http.PostAsJsonAsync("/v1/completions", new { model = BaseModelName, prompt = $"plain {i}", max_tokens = 8, temperature = 0 });
            response.EnsureSuccessStatusCode();
            return clock.Elapsed.TotalMilliseconds;
        }

        var alone = new List<double>();
        for (int i = 0; i < 12; i++)
            alone.Add(Plain(i).GetAwaiter().GetResult());
        var wall = Stopwatch.StartNew();
        var bombs = Enumerable.Range(1, FloodRequests).Select(async i =>
        {
            using var response = await http.PostAsJsonAsync("/v1/completions",
                new { model = BaseModelName, prompt = "attack", max_tokens = 4, structured_outputs = new { regex = HostilePattern(i) } });
            if ((int)response.StatusCode != 400)
                throw new InvalidOperationException($"a hostile pattern got HTTP {(int)response.StatusCode}");
            return wall.Elapsed.TotalMilliseconds;
        }).ToArray();
        var beside = new List<double>();
        for (int i = 0; i < 12 && !bombs.All(b => b.IsCompleted); i++)
            beside.Add(Plain(100 + i).GetAwaiter().GetResult());
        double floodMs = Task.WhenAll(bombs).GetAwaiter().GetResult().Max();
        report.Add($"plain request (8 tokens) alone / beside {FloodRequests} new hostile patterns, median", "ms", Stats.Median(alone), Stats.Median(beside),
            Stats.Median(beside) / Stats.Median(alone));
        report.Add($"plain request beside the hostile patterns, slowest of {beside.Count}", "ms", alone.Max(), beside.Max(), beside.Max() / alone.Max());
        report.Add($"{FloodRequests} hostile patterns, all refused (wall)", "ms", floodMs, null, null);
    }

    private const int FloodRequests = 24;

    private sealed record Round(long Tokens, double Seconds, int[] Lengths, int Valid, EngineSteps Steps)
    {
        public double TokensPerSecond => Tokens / Seconds;
    }

    /// <summary>One closed-loop round: with <paramref name="schema"/> every request is constrained; else each generates <paramref name="lengths"/>[i] tokens.</summary>
    private Round RunRound(HttpClient http, string? schema, int[]? lengths, int round)
    {
        int total = clients * requestsEach;
        var outLengths = new int[total];
        int valid = 0;
        var before = EngineSteps.Scrape(http);
        var wall = Stopwatch.StartNew();
        Task.WaitAll(Enumerable.Range(0, clients).Select(client => Task.Run(async () =>
        {
            for (int r = 0; r < requestsEach; r++)
            {
                int i = client * requestsEach + r;
                var prompt = Enumerable.Range(0, PromptTokens).Select(t => 100 + ((t * 31 + i * 7 + round * 13) % 20000)).ToArray();
                var body = new JsonObject
                {
                    ["model"] = $"zipf-{i % 8}", ["prompt"] = new JsonArray(prompt.Select(p => (JsonNode)p).ToArray()), ["temperature"] = 0,
                    ["max_tokens"] = schema is null ? lengths![i % lengths.Length] : 900, ["ignore_eos"] = schema is null,
                };
                if (schema is not null)
                    body["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = new JsonObject { ["name"] = "clinical", ["schema"] = JsonNode.Parse(schema) } };
                using var response = await http.PostAsJsonAsync("/v1/completions", body);
                var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
                if (!response.IsSuccessStatusCode)
                    throw new InvalidOperationException($"request {i}: HTTP {(int)response.StatusCode} {json.ToJsonString()}");
                outLengths[i] = (int)json["usage"]!["completion_tokens"]!;
                if (schema is not null && (string?)json["choices"]![0]!["finish_reason"] == "stop" && Parses((string)json["choices"]![0]!["text"]!))
                    Interlocked.Increment(ref valid);
            }
        })).ToArray());
        var steps = EngineSteps.Scrape(http).Since(before, wall.Elapsed);
        return new Round(outLengths.Sum(), wall.Elapsed.TotalSeconds, outLengths, valid, steps);
    }

    private static bool Parses(string text)
    {
        try
        {
            System.Text.Json.JsonDocument.Parse(text).Dispose();
            return true;
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }
    }

    /// <summary>The clinical-record schema the tests validate outputs against.</summary>
    private static string ClinicalSchema() => Serving.Tests.Shared.ExtractionSchemas.Valid.Single(s => s.Name == "clinical_record").Schema;
}
