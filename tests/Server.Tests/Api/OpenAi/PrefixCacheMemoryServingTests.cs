using System.Globalization;
using System.Net.Http.Json;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// The prefix cache's memory through the real server, with a KV pool far smaller than what the traffic's prefixes would
/// fill (1,024 tokens, 64 blocks) so the cache evicts all the time: many requests with random shared prefixes, some
/// streamed and abandoned after their first token, leave every block free or cached-and-unreferenced, and the cache never
/// costs a running sequence a block (no preemption, no failure, and a request needing every block still runs).
/// CI sends 500 requests; <c>SERVING_PREFIX_MEMORY_REQUESTS=10000</c> runs the full count.
/// </summary>
public sealed class PrefixCacheMemoryServingTests : IAsyncLifetime
{
    private const int KvTokens = 1024, MaxContext = 256;
    private readonly string _root = TestDirectories.Path("prefix-memory");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base"), store = Path.Combine(_root, "store");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 43 });
        SyntheticAdapterWriter.Write(Path.Combine(store, "clinical"), model, 4, 8, ["q_proj", "v_proj"], 9);
        _server = await ServerProcess.StartAsync("--model", model, "--adapters", store, "--dtype", "float32", "--max-sequences", "4",
            "--max-context", MaxContext.ToString(CultureInfo.InvariantCulture), "--kv-cache-tokens", KvTokens.ToString(CultureInfo.InvariantCulture),
            "--adapter-registry", Path.Combine(_root, "registry.json"));
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private static int Requests => int.TryParse(Environment.GetEnvironmentVariable("SERVING_PREFIX_MEMORY_REQUESTS"), out int n) && n > 0 ? n : 500;

    [Fact]
    public async Task Completions_ManyRequestsWithSharedPrefixesAndAbandonedStreams_EveryBlockFreeOrCachedAndNoPreemption()
    {
        int[][] prefixes = [.. Enumerable.Range(0, 6).Select(p => Tokens(16 * p + 7 * (p % 2), seed: p))];
        int next = -1, failures = 0, abandoned = 0;
        var errors = new System.Collections.Concurrent.ConcurrentBag<string>();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(client => Task.Run(async () =>
        {
            var random = new Random(client);
            while (Interlocked.Increment(ref next) < Requests)
            {
                int[] prompt = [.. prefixes[random.Next(prefixes.Length)], .. Tokens(1 + random.Next(40), seed: 1000 + random.Next(1_000_000))];
                var body = new Dictionary<string, object>
                {
                    ["model"] = random.Next(3) == 0 ? "clinical" : "base", ["prompt"] = prompt, ["max_tokens"] = 1 + random.Next(8),
                    ["temperature"] = 0, ["ignore_eos"] = true, ["stream"] = random.Next(4) == 0,
                };
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(body) };
                using var response = await _server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                if (!response.IsSuccessStatusCode)
                {
                    Interlocked.Increment(ref failures);
                    errors.Add(await response.Content.ReadAsStringAsync());
                    continue;
                }

                if ((bool)body["stream"])
                {
                    // Read one event, then drop the connection: the server cancels the request mid-generation.
                    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                    await reader.ReadLineAsync();
                    Interlocked.Increment(ref abandoned);
                    continue;
                }

                await response.Content.ReadAsStringAsync();
            }
        })));
        Assert.True(failures == 0, string.Join("\n", errors.Take(3)));
        Assert.True(abandoned > 0);

        var idle = await IdleMetricsAsync();
        Assert.Equal(0, idle["vllm:kv_cache_usage_perc"]);
        Assert.InRange(idle["serving_prefix_cache_blocks"], 1, KvTokens / 16);
        Assert.Equal(0, idle["serving_preemptions"]);
        Assert.True(idle["vllm:prefix_cache_hits_total"] > 0);

        // Four sequences at the longest context need every block of the pool: the cache gives all of its blocks back.
        var full = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => HttpJson.PostAsync(_server.Http, "/v1/completions",
            new { model = "base", prompt = Tokens(MaxContext - 16, seed: 50 + i), max_tokens = 16, temperature = 0, ignore_eos = true })));
        Assert.All(full, r => Assert.Equal(200, r.Status));
        Assert.Equal(0, (await IdleMetricsAsync())["serving_preemptions"]);
    }

    private static int[] Tokens(int count, int seed) => [.. Enumerable.Range(0, count).Select(i => 3 + (int)(((long)seed * 7919 + i * 131) % 240))];

    /// <summary>The metrics once nothing runs or waits (abandoned streams end at the engine's next step).</summary>
    private async Task<Dictionary<string, double>> IdleMetricsAsync()
    {
        for (int attempt = 0; ; attempt++)
        {
            var samples = await MetricSamples.ScrapeAsync(_server.Http);
            if ((samples["serving_requests_running"] == 0 && samples["serving_requests_waiting"] == 0) || attempt == 100)
                return samples;
            await Task.Delay(100);
        }
    }
}
