using System.Diagnostics;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Serving.Contracts.Generation;
using Serving.Runtime.Generation;
using Serving.Server;

namespace Serving.Bench;

/// <summary>
/// What <c>/v1/embeddings</c> costs against the engine's own prefill: the same prompts as one-token generation requests
/// handed to the engine in-process (<see cref="GenerationClient"/>, all at once) and as one embeddings call through REST on
/// loopback — an embedding is that prefill plus the final hidden state's row — and the same inputs behind a shared
/// instruction prefix (how Qwen3-Embedding's queries are written), which the prefix cache serves after the first. Rounds
/// alternate the variants; medians of prompt tokens per second.
/// </summary>
internal sealed class EmbeddingBenchmark(string modelDir, string dtype, int inputs, int tokens, int rounds)
{
    public BenchReport Run()
    {
        var report = new BenchReport($"Embeddings: {inputs} inputs of {tokens} tokens, {dtype}", "engine prefill (in-process)", "/v1/embeddings", "/v1/embeddings, shared prefix");
        report.Context("model", modelDir);
        report.Context("inputs", inputs);
        report.Context("tokens", tokens);
        string cache = Path.Combine(Path.GetTempPath(), "serving-bench-embeddings");
        var app = ServingApp.Build(["--urls", "http://127.0.0.1:0", "--cache-dir", cache, "--model", modelDir, "--dtype", dtype, "--max-sequences", "32",
            "--max-context", "2048", "--enable-embeddings", "--Logging:LogLevel:Default", "Warning"]);
        app.StartAsync().GetAwaiter().GetResult();
        try
        {
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(10) };
            var engine = app.Services.GetRequiredService<GenerationClient>();
            var model = app.Services.GetRequiredService<Serving.Runtime.Hosting.ModelHost>();
            string id = model.ModelId;
            // Every run embeds inputs no run has seen (distinct words per run and input): the prefix cache holds nothing of
            // them, but a shared instruction prefix once it has been run.
            int run = 0;
            List<int[]> Prompts()
            {
                int seed = ++run;
                return [.. Enumerable.Range(0, inputs).Select(i =>
                    model.Served.Encode(string.Join(' ', Enumerable.Range(0, tokens).Select(w => $"w{(seed * 1_000_003L + i * 7919L + w * 104729L) % 50021}")), addSpecialTokens: true)[..tokens])];
            }

            string instruction = "Instruct: Given a web search query, retrieve relevant passages that answer the query. " + string.Join(' ', Enumerable.Repeat("context", 48)) + "\nQuery: ";

            double Engine()
            {
                var prompts = Prompts();
                var sampling = new SamplingParams { Temperature = 0, MaxTokens = 1, IgnoreEos = true };
                var sw = Stopwatch.StartNew();
                Task.WaitAll([.. prompts.Select(p => Task.Run(async () =>
                {
                    await foreach (var _ in engine.SubmitAsync(new GenerationRequest(p, sampling, PinnedAdapters.None), CancellationToken.None))
                    {
                    }
                }))]);
                return prompts.Sum(p => p.Length) / sw.Elapsed.TotalSeconds;
            }

            double Embeddings(string prefix)
            {
                var prompts = Prompts();
                var input = prompts.Select(p => prefix.Length == 0 ? (object)p : prefix + model.Served.Decode(p, skipSpecialTokens: true)).ToArray();
                var sw = Stopwatch.StartNew();
                using var response = http.PostAsJsonAsync("/v1/embeddings", new { model = id, input }).GetAwaiter().GetResult();
                response.EnsureSuccessStatusCode();
                var body = response.Content.ReadFromJsonAsync<System.Text.Json.Nodes.JsonObject>().GetAwaiter().GetResult()!;
                return (int)body["usage"]!["prompt_tokens"]! / sw.Elapsed.TotalSeconds;
            }

            Func<double>[] variants = [Engine, () => Embeddings(""), () => Embeddings(instruction)];
            foreach (var v in variants)
                v();                                                 // warm-up: kernels, allocations, the shared prefix's blocks
            var samples = variants.Select(_ => new List<double>()).ToArray();
            for (int r = 0; r < rounds; r++)
                for (int k = 0; k < variants.Length; k++)
                {
                    int v = (k + r) % variants.Length;               // each round starts with another variant
                    samples[v].Add(variants[v]());
                }

            var medians = samples.Select(s => Stats.Percentile(s, 0.5)).ToArray();
            report.Add("prompt tokens per second, a shared prefix counted as sent (median)", "tok/s", medians.Select(m => (double?)m).ToArray());
            report.Add("against the engine's prefill", "×", 1.0, medians[1] / medians[0], medians[2] / medians[0]);
            return report;
        }
        finally
        {
            app.StopAsync().GetAwaiter().GetResult();
            ((IDisposable)app).Dispose();
        }
    }
}
