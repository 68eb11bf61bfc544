using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// Prefix caching through the real server (float32, greedy): a request whose prompt shares a prefix with earlier ones reuses
/// their full KV blocks (<c>usage.prompt_tokens_details.cached_tokens</c> says how many) and still produces exactly the
/// tokens of an uncached run. The uncached reference is the same request with a fresh <c>cache_salt</c>, which can never hit.
/// Blocks are 16 tokens. Tenants come from API keys; a replaced adapter version never reads the old version's blocks.
/// </summary>
public sealed class PrefixCachingServingTests : IAsyncLifetime
{
    private const string Alice = "alice-key-prefix-0123", Bob = "bob-key-prefix-01234", Admin = "admin-key-prefix-0123";
    private readonly string _root = TestDirectories.Path("prefix-caching");
    private ServerProcess _server = null!;
    private string _model = "", _v1 = "", _v2 = "";
    private int _salts;

    public async Task InitializeAsync()
    {
        _model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 41 });
        string store = Path.Combine(_root, "store");
        SyntheticAdapterWriter.Write(Path.Combine(store, "clinical"), _model, 8, 16, SyntheticAdapterWriter.AllTargets, 5);
        SyntheticAdapterWriter.Write(Path.Combine(store, "translate"), _model, 4, 8, SyntheticAdapterWriter.AllTargets, 6);
        _v1 = Path.Combine(_root, "v1");
        _v2 = Path.Combine(_root, "v2");
        SyntheticAdapterWriter.Write(_v1, _model, 8, 16, SyntheticAdapterWriter.AllTargets, 7);
        SyntheticAdapterWriter.Write(_v2, _model, 8, 16, SyntheticAdapterWriter.AllTargets, 8);
        _server = await ServerProcess.StartAsync("--model", _model, "--adapters", store, "--dtype", "float32", "--max-context", "512",
            "--adapter-registry", Path.Combine(_root, "registry.json"),
            "--Serving:Auth:Keys:0:Key", Alice, "--Serving:Auth:Keys:0:Tenant", "a", "--Serving:Auth:Keys:0:AllowedSources:0", _root,
            "--Serving:Auth:Keys:1:Key", Bob, "--Serving:Auth:Keys:1:Tenant", "b",
            "--Serving:Auth:Keys:2:Key", Admin, "--Serving:Auth:Keys:2:Role", "Admin");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private static int[] Tokens(int count, int seed) => [.. Enumerable.Range(0, count).Select(i => 3 + (seed * 7919 + i * 131) % 240)];

    private async Task<(int[] Tokens, int Cached)> Complete(object model, int[] prompt, string key = Alice, string? salt = null, object? adapters = null,
        int maxTokens = 8)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new Dictionary<string, object?>
            {
                ["model"] = model, ["prompt"] = prompt, ["max_tokens"] = maxTokens, ["temperature"] = 0, ["ignore_eos"] = true, ["return_token_ids"] = true,
                ["cache_salt"] = salt, ["adapters"] = adapters,
            }.Where(kv => kv.Value is not null).ToDictionary()),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await _server.Http.SendAsync(request);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.True(response.IsSuccessStatusCode, body.ToJsonString());
        return (body["choices"]![0]!["token_ids"]!.AsArray().Select(x => (int)x!).ToArray(), (int)body["usage"]!["prompt_tokens_details"]!["cached_tokens"]!);
    }

    private async Task<int[]> Uncached(object model, int[] prompt, string key = Alice, object? adapters = null)
    {
        var (tokens, cached) = await Complete(model, prompt, key, $"fresh-{Interlocked.Increment(ref _salts)}", adapters);
        Assert.Equal(0, cached);
        return tokens;
    }

    [Theory]
    [InlineData("base", 0)]
    [InlineData("base", 1)]
    [InlineData("base", 15)]
    [InlineData("base", 16)]
    [InlineData("base", 17)]
    [InlineData("base", 300)]
    [InlineData("clinical", 17)]
    [InlineData("clinical", 300)]
    [InlineData("mix", 16)]
    [InlineData("mix", 300)]
    [InlineData("auto", 300)]
    public async Task Completions_PromptSharesAPrefix_SameTokensAsUncachedAndReusesItsFullBlocks(string target, int shared)
    {
        object model = target switch { "base" or "mix" => "base", _ => target };
        object? mix = target == "mix" ? new[] { new { id = "clinical", weight = 0.7 }, new { id = "translate", weight = 0.3 } } : null;
        var prefix = Tokens(shared, seed: shared + target.Length);
        int[] first = [.. prefix, .. Tokens(20, seed: 1000 + shared)], second = [.. prefix, .. Tokens(21, seed: 2000 + shared)];
        await Complete(model, first, adapters: mix);

        var (tokens, cached) = await Complete(model, second, adapters: mix);

        Assert.Equal(await Uncached(model, second, adapters: mix), tokens);
        if (target != "auto")                                              // auto may route the two prompts to different mixes
            Assert.Equal(shared / 16 * 16, cached);
    }

    [Fact]
    public async Task Completions_NextTurnHoldsTheEarlierAnswer_ReusesItsGeneratedBlocksExactly()
    {
        int[] history = Tokens(100, seed: 55);
        var (answer, _) = await Complete("clinical", history, maxTokens: 40);

        int[] nextTurn = [.. history, .. answer, .. Tokens(20, seed: 56)];
        var (tokens, cached) = await Complete("clinical", nextTurn);

        Assert.Equal(128, cached);                                         // 139 tokens had their KV written: 8 full blocks
        Assert.Equal(await Uncached("clinical", nextTurn), tokens);
    }

    [Fact]
    public async Task Completions_EarlierRequestCancelledMidGeneration_ReusesItsBlocksExactly()
    {
        int[] prompt = Tokens(70, seed: 77);
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new { model = "clinical", prompt, max_tokens = 200, temperature = 0, ignore_eos = true, stream = true, cache_salt = "cancelled" }),
        })
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Alice);
            using var response = await _server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            for (int events = 0; events < 3;)
                if ((await reader.ReadLineAsync())!.StartsWith("data: {", StringComparison.Ordinal))
                    events++;
        }                                                                  // the connection drops: the server cancels the request

        int[] next = [.. prompt, .. Tokens(9, seed: 78)];
        var (tokens, cached) = await Complete("clinical", next, salt: "cancelled");

        Assert.Equal(64, cached);                                          // the 70-token prompt's 4 full blocks outlived the cancellation
        Assert.Equal(await Uncached("clinical", next), tokens);
    }

    [Fact]
    public async Task Generate_Grpc_SaltPartitionsAndUsageCountsCachedTokens()
    {
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(_server.Address);
        var client = new Serving.V1.Generation.GenerationClient(channel);
        var alice = new global::Grpc.Core.Metadata { { "Authorization", "Bearer " + Alice } };
        Serving.V1.GenerateRequest Request(string? salt)
        {
            var r = new Serving.V1.GenerateRequest { Model = "base", MaxTokens = 6, Temperature = 0, IgnoreEos = true };
            r.PromptTokenIds.AddRange(Tokens(90, seed: 66));
            if (salt is not null)
                r.CacheSalt = salt;
            return r;
        }

        var first = await client.GenerateAsync(Request("grpc"), alice);
        var second = await client.GenerateAsync(Request("grpc"), alice);
        var otherSalt = await client.GenerateAsync(Request("grpc-2"), alice);
        var stream = client.GenerateStream(Request("grpc"), alice);
        var streamed = new List<Serving.V1.GenerateStreamResponse>();
        await foreach (var message in stream.ResponseStream.ReadAllAsync())
            streamed.Add(message);

        Assert.Equal(0, first.Usage.CachedPromptTokens);
        Assert.Equal(80, second.Usage.CachedPromptTokens);
        Assert.Equal(0, otherSalt.Usage.CachedPromptTokens);
        Assert.Equal(80, streamed[^1].Usage.CachedPromptTokens);
        Assert.Equal(first.TokenIds, second.TokenIds);
        Assert.Equal(first.TokenIds, streamed.SelectMany(m => m.TokenIds));
        var empty = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(async () => await client.GenerateAsync(Request(""), alice));
        Assert.Equal(global::Grpc.Core.StatusCode.InvalidArgument, empty.StatusCode);
        Assert.Contains("cache_salt", empty.Status.Detail);
    }

    [Fact]
    public async Task Completions_OtherTenantOrSalt_NeverHitsAnotherPartition()
    {
        var prompt = Tokens(100, seed: 77);
        await Complete("base", prompt, Alice);

        Assert.Equal(0, (await Complete("base", prompt, Bob)).Cached);
        Assert.Equal(0, (await Complete("base", prompt, Alice, salt: "case-42")).Cached);
        Assert.Equal(96, (await Complete("base", prompt, Alice, salt: "case-42")).Cached);
        Assert.Equal(96, (await Complete("base", prompt, Alice)).Cached);
        Assert.Equal(96, (await Complete("base", prompt, Bob)).Cached);     // b's own blocks, from its first request
    }

    [Fact]
    public async Task Completions_AdapterReplacedUnderItsName_NewVersionNeverReadsOldBlocks()
    {
        var prompt = Tokens(200, seed: 88);
        Assert.Equal(200, await Load("swapper", _v1));
        Assert.Equal(200, await Load("ref-v2", _v2));
        await Complete("swapper", prompt);
        Assert.Equal(192, (await Complete("swapper", prompt)).Cached);

        Assert.Equal(200, await Load("swapper", _v2));
        var (tokens, cached) = await Complete("swapper", prompt);

        Assert.Equal(0, cached);
        Assert.Equal(await Uncached("ref-v2", prompt), tokens);            // the new version's own answer, token for token
        Assert.NotEqual(await Uncached("base", prompt), tokens);
    }

    /// <summary>Replacements in <see cref="Completions_ReplacementsUnderConcurrentLoad_EveryAnswerIsOneVersionsOwn"/>: 1,000 for the full run.</summary>
    public static int Replacements => int.TryParse(Environment.GetEnvironmentVariable("SERVING_PREFIX_REPLACEMENTS"), out int n) ? n : 120;

    [Fact]
    public async Task Completions_ReplacementsUnderConcurrentLoad_EveryAnswerIsOneVersionsOwn()
    {
        var prefix = Tokens(64, seed: 123);
        var prompts = Enumerable.Range(0, 4).Select(i => (int[])[.. prefix, .. Tokens(5 + i, seed: 200 + i)]).ToArray();
        Assert.Equal(200, await Load("ref-1", _v1));
        Assert.Equal(200, await Load("ref-2", _v2));
        Assert.Equal(200, await Load("churn", _v1));
        var v1 = new List<int[]>();
        var v2 = new List<int[]>();
        foreach (var p in prompts)
        {
            v1.Add(await Uncached("ref-1", p));
            v2.Add(await Uncached("ref-2", p));
            Assert.NotEqual(v1[^1], v2[^1]);
        }

        using var done = new CancellationTokenSource();
        int wrong = 0, answered = 0, fromV1 = 0, fromV2 = 0, cachedTokens = 0;
        var clients = Enumerable.Range(0, 4).Select(c => Task.Run(async () =>
        {
            for (int i = 0; !done.IsCancellationRequested; i++)
            {
                int p = (c + i) % prompts.Length;
                var (tokens, cached) = await Complete("churn", prompts[p]);
                Interlocked.Increment(ref answered);
                Interlocked.Add(ref cachedTokens, cached);
                if (tokens.SequenceEqual(v1[p]))
                    Interlocked.Increment(ref fromV1);
                else if (tokens.SequenceEqual(v2[p]))
                    Interlocked.Increment(ref fromV2);
                else
                    Interlocked.Increment(ref wrong);
            }
        })).ToArray();
        for (int r = 0; r < Replacements; r++)
            Assert.Equal(200, await Load("churn", r % 2 == 0 ? _v2 : _v1));
        await done.CancelAsync();
        await Task.WhenAll(clients);

        Assert.Equal(0, wrong);
        Assert.True(fromV1 > 0 && fromV2 > 0, $"answers: {fromV1} from v1, {fromV2} from v2 of {answered}");
        Assert.True(cachedTokens > 0, "no request reused a cached prefix");
    }

    [Fact]
    public async Task Completions_CacheSaltInvalid_400NamingTheField()
    {
        foreach (object salt in new object[] { "", 42, new string('s', 257) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
            {
                Content = JsonContent.Create(new { model = "base", prompt = "x", max_tokens = 1, cache_salt = salt }),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Alice);
            using var response = await _server.Http.SendAsync(request);
            string body = await response.Content.ReadAsStringAsync();

            Assert.True((int)response.StatusCode == 400, body);
            Assert.Contains("cache_salt", body);
        }
    }

    [Fact]
    public async Task Metrics_AfterHits_VllmPrefixCacheCountersCountTokens()
    {
        var prompt = Tokens(64, seed: 99);
        await Complete("base", prompt, salt: "metrics");
        await Complete("base", prompt, salt: "metrics");

        using var scrape = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        scrape.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Admin);
        using var response = await _server.Http.SendAsync(scrape);
        string metrics = await response.Content.ReadAsStringAsync();

        Assert.Contains("# TYPE vllm:prefix_cache_queries counter", metrics);
        Assert.Matches(@"(?m)^vllm:prefix_cache_hits_total\{model_name=""[^""]+""\} [1-9]", metrics);
        Assert.Matches(@"(?m)^vllm:prefix_cache_queries_total\{model_name=""[^""]+""\} [1-9]", metrics);
    }

    private async Task<int> Load(string name, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/load_lora_adapter") { Content = JsonContent.Create(new { lora_name = name, lora_path = path }) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Admin);
        using var response = await _server.Http.SendAsync(request);
        return (int)response.StatusCode;
    }
}
