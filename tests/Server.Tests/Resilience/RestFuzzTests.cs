using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using CsCheck;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serving.Runtime.Generation;
using Serving.Server.Tests.Support;
using Xunit.Abstractions;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// 100,000 generated bodies (structured, with tools and a tool_choice, with repeated keys, and byte-mutated) against the completions, chat, tokenizer and adapter-management endpoints (OpenAI/vLLM and the gRPC services' JSON routes) of
/// the real server: every answer is 2xx or 4xx (never 5xx), none hangs, the server logs no error and still serves afterwards.
/// <c>SERVING_FUZZ_ITERATIONS</c> raises or lowers the count.
/// </summary>
public class RestFuzzTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly string[] Paths = ["/v1/completions", "/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/score", "/v1/rerank", "/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/tokenize", "/detokenize",
        "/v1/serving/generate", "/v1/serving/generate:stream", "/v1/serving/tokenize", "/v1/serving/detokenize", "/v1/serving/adapters", "/v1/serving/embed"];
    private readonly string _cache = TestDirectories.Path("fuzz");
    private readonly CapturedLogs _logs = new();
    private ServerProcess _server = null!;

    public static int Iterations => int.TryParse(Environment.GetEnvironmentVariable("SERVING_FUZZ_ITERATIONS"), out int n) ? n : 100_000;

    /// <summary>The bodies this class sends.</summary>
    protected virtual int Count => Iterations;

    /// <summary>The endpoints they go to, in turn.</summary>
    protected virtual IReadOnlyList<string> FuzzedPaths => Paths;

    /// <summary>Bodies a subclass adds to the generated ones.</summary>
    protected virtual void AddBodies(ConcurrentQueue<byte[]> bodies)
    {
    }

    /// <summary>Server arguments beside the common ones.</summary>
    protected virtual string[] ExtraArguments => ["--enable-embeddings"];

    public async Task InitializeAsync() =>
        _server = await ServerProcess.StartAsync(_logs.AddTo, ["--cache-dir", _cache, "--dtype", "float32", "--max-sequences", "8", "--max-context", "24",
            "--adapter-registry", Path.Combine(_cache, "registry.json"), "--max-queued-requests", "4096", "--Logging:LogLevel:Default", "Warning",
            "--tool-call-parser", "hermes", "--speculation", "ngram", "--prompt-lookup-min", "1", .. ExtraArguments]);

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_cache);
    }

    [Fact]
    public async Task Endpoints_GeneratedBodies_Only2xxOr4xxAndStillServing()
    {
        var bodies = new ConcurrentQueue<byte[]>();
        int structured = Count * 9 / 16, repeated = Count / 8, tools = Count / 8, grammars = Count / 16, predictions = Count / 16;
        RequestBodyGenerator.Structured.Sample(b => bodies.Enqueue(System.Text.Encoding.UTF8.GetBytes(b)), iter: structured, threads: 1, seed: FuzzSeed.ForCsCheck("0N0XIzNsQ0O2"));
        RequestBodyGenerator.WithTools.Sample(b => bodies.Enqueue(System.Text.Encoding.UTF8.GetBytes(b)), iter: tools, threads: 1, seed: FuzzSeed.ForCsCheck("0N0XIzNsQ0O7"));
        RequestBodyGenerator.WithGrammar.Sample(b => bodies.Enqueue(System.Text.Encoding.UTF8.GetBytes(b)), iter: grammars, threads: 1, seed: FuzzSeed.ForCsCheck("0N0XIzNsQ0O8"));
        RequestBodyGenerator.WithPrediction.Sample(b => bodies.Enqueue(System.Text.Encoding.UTF8.GetBytes(b)), iter: predictions, threads: 1, seed: FuzzSeed.ForCsCheck("0N0XIzNsQ0O9"));
        RequestBodyGenerator.RepeatedKeys.Sample(b => bodies.Enqueue(System.Text.Encoding.UTF8.GetBytes(b)), iter: repeated, threads: 1, seed: FuzzSeed.ForCsCheck("0N0XIzNsQ0O6"));
        RequestBodyGenerator.Mutated.Sample(bodies.Enqueue, iter: Count - structured - repeated - tools - grammars - predictions, threads: 1, seed: FuzzSeed.ForCsCheck("0N0XIzNsQ0O3"));
        AddBodies(bodies);
        var inputs = bodies.ToArray();

        var statuses = new ConcurrentDictionary<int, int>();
        var failures = new ConcurrentQueue<string>();
        var slowest = TimeSpan.Zero;
        var clock = Stopwatch.StartNew();
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 16 }) { BaseAddress = _server.Address, Timeout = TimeSpan.FromSeconds(30) };
        await Parallel.ForEachAsync(Enumerable.Range(0, inputs.Length), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
        {
            using var content = new ByteArrayContent(inputs[i]);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            var sw = Stopwatch.StartNew();
            try
            {
                using var response = await http.PostAsync(FuzzedPaths[i % FuzzedPaths.Count], content, ct);
                await response.Content.ReadAsByteArrayAsync(ct);     // streams included: the whole answer must arrive
                int status = (int)response.StatusCode;
                statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
                if (status >= 500)
                    failures.Enqueue($"{status} for {FuzzedPaths[i % FuzzedPaths.Count]} {System.Text.Encoding.UTF8.GetString(inputs[i])}");
            }
            catch (Exception ex)
            {
                failures.Enqueue($"{ex.GetType().Name} {ex.Message} for {FuzzedPaths[i % FuzzedPaths.Count]} {System.Text.Encoding.UTF8.GetString(inputs[i])}");
            }

            lock (failures)
                slowest = sw.Elapsed > slowest ? sw.Elapsed : slowest;
        });

        output.WriteLine($"{inputs.Length} bodies in {clock.Elapsed.TotalSeconds:F1} s, slowest answer {slowest.TotalMilliseconds:F0} ms; statuses: " +
            string.Join(", ", statuses.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}×{kv.Value}")));
        Assert.True(failures.IsEmpty, $"{failures.Count} failures:\n{string.Join("\n", failures.Take(10))}");
        Assert.True(statuses.Keys.Any(s => s < 300) && statuses.Keys.Any(s => s is >= 400 and < 500), "the fuzz reached neither success nor validation");

        var (ok, body) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new { model = "serving-demo-tiny", prompt = "still here", max_tokens = 2 });
        Assert.True(ok == 200, body.ToJsonString());
        var worker = _server.Services.GetRequiredService<EngineWorker>();
        Assert.True(SpinWait.SpinUntil(() => worker.Running == 0 && worker.Waiting == 0 && worker.UsedKvBlocks == 0 && worker.PinnedAdapterSlots == 0, 10_000));
        var errors = _logs.AtLeast(LogLevel.Error);
        Assert.True(errors.Count == 0, string.Join("\n", errors.Take(5)));
    }
}
