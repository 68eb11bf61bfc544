using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

[Collection(nameof(CompletionsServer))]
public sealed class CompletionsEndpointTests(DemoServerFixture fixture)
{
    private const string Model = "serving-demo-tiny";
    private HttpClient Http => fixture.Http;

    private static object Greedy(object prompt, int maxTokens = 8, bool returnIds = true) =>
        new { model = Model, prompt, max_tokens = maxTokens, temperature = 0, ignore_eos = true, return_token_ids = returnIds };

    [Fact]
    public async Task Models_Lists_DemoModel()
    {
        var body = JsonNode.Parse(await Http.GetStringAsync("/v1/models"))!;
        Assert.Equal("list", (string?)body["object"]);
        Assert.Equal(Model, (string?)body["data"]![0]!["id"]);
        Assert.Equal("model", (string?)body["data"]![0]!["object"]);
    }

    [Fact]
    public async Task Completions_Greedy_IsDeterministicAndMatchesItsTokenIds()
    {
        var (status, first) = await HttpJson.PostAsync(Http, "/v1/completions", Greedy("Hello, my name is"));
        Assert.Equal(200, status);
        var (_, second) = await HttpJson.PostAsync(Http, "/v1/completions", Greedy("Hello, my name is"));
        var choice = first["choices"]![0]!;
        Assert.Equal("text_completion", (string?)first["object"]);
        Assert.Equal("length", (string?)choice["finish_reason"]);
        Assert.Equal(8, choice["token_ids"]!.AsArray().Count);
        Assert.Equal((string?)choice["text"], (string?)second["choices"]![0]!["text"]);
        Assert.False(string.IsNullOrEmpty((string?)choice["text"]));
        Assert.Equal(new[] { 15496, 11, 616, 1438, 318 }, first["prompt_token_ids"]!.AsArray().Select(x => (int)x!));
        Assert.Equal(5, (int)first["usage"]!["prompt_tokens"]!);
        Assert.Equal(8, (int)first["usage"]!["completion_tokens"]!);
        Assert.Equal(13, (int)first["usage"]!["total_tokens"]!);
    }

    [Fact]
    public async Task Completions_TokenIdPrompt_UsedExactlyAsGiven()
    {
        int[] ids = [50256, 15496, 995];
        var (status, body) = await HttpJson.PostAsync(Http, "/v1/completions", Greedy(ids, 3));
        Assert.Equal(200, status);
        Assert.Equal(ids, body["prompt_token_ids"]!.AsArray().Select(x => (int)x!));
        Assert.Equal(3, (int)body["usage"]!["prompt_tokens"]!);
    }

    [Fact]
    public async Task Completions_ListOfPrompts_OneChoiceEachMatchingSingleRequests()
    {
        string[] prompts = ["The weather today", "Once upon a time there", "1, 2, 3,"];
        var (status, batch) = await HttpJson.PostAsync(Http, "/v1/completions", Greedy(prompts, 6));
        Assert.Equal(200, status);
        var choices = batch["choices"]!.AsArray();
        Assert.Equal(3, choices.Count);
        for (int i = 0; i < prompts.Length; i++)
        {
            var (_, single) = await HttpJson.PostAsync(Http, "/v1/completions", Greedy(prompts[i], 6));
            var choice = choices.Single(c => (int)c!["index"]! == i)!;
            Assert.Equal((string?)single["choices"]![0]!["text"], (string?)choice["text"]);
        }
    }

    [Fact]
    public async Task Completions_ConcurrentRequests_AllSucceedWithTheirOwnResults()
    {
        string[] prompts = ["alpha beta", "gamma delta epsilon", "zeta", "eta theta iota kappa", "lambda mu", "nu xi omicron"];
        var expected = new List<string>();
        foreach (string p in prompts)
            expected.Add((string)(await HttpJson.PostAsync(Http, "/v1/completions", Greedy(p, 10))).Body["choices"]![0]!["text"]!);
        var concurrent = await Task.WhenAll(prompts.Select(p => HttpJson.PostAsync(Http, "/v1/completions", Greedy(p, 10))));
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(200, concurrent[i].Status);
            Assert.Equal(expected[i], (string?)concurrent[i].Body["choices"]![0]!["text"]);
        }
    }

    [Fact]
    public async Task Completions_SameSeed_SameSampledText()
    {
        object Sampled(long seed) => new { model = Model, prompt = "Random words:", max_tokens = 10, temperature = 1.0, top_p = 0.95, seed, ignore_eos = true };
        string a = (string)(await HttpJson.PostAsync(Http, "/v1/completions", Sampled(42))).Body["choices"]![0]!["text"]!;
        string b = (string)(await HttpJson.PostAsync(Http, "/v1/completions", Sampled(42))).Body["choices"]![0]!["text"]!;
        string c = (string)(await HttpJson.PostAsync(Http, "/v1/completions", Sampled(43))).Body["choices"]![0]!["text"]!;
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public async Task Completions_Stream_ChunksConcatenateToNonStreamTextAndEndWithDone()
    {
        var (_, whole) = await HttpJson.PostAsync(Http, "/v1/completions", Greedy("Streaming test", 8));
        var events = await HttpJson.StreamAsync(Http, "/v1/completions",
            new { model = Model, prompt = "Streaming test", max_tokens = 8, temperature = 0, ignore_eos = true, stream = true, stream_options = new { include_usage = true } });
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonNode.Parse(e)!).ToList();
        var text = string.Concat(chunks.Where(c => c["choices"]!.AsArray().Count > 0).Select(c => (string?)c["choices"]![0]!["text"]));
        Assert.Equal((string?)whole["choices"]![0]!["text"], text);
        Assert.Equal("length", (string?)chunks[^2]["choices"]![0]!["finish_reason"]);
        Assert.Equal(8, (int)chunks[^1]["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Completions_StopString_TruncatesOutput()
    {
        var (_, whole) = await HttpJson.PostAsync(Http, "/v1/completions", Greedy("Stop here", 12));
        string text = (string)whole["choices"]![0]!["text"]!;
        string stop = text.Substring(4, 3);
        var (_, stopped) = await HttpJson.PostAsync(Http, "/v1/completions",
            new { model = Model, prompt = "Stop here", max_tokens = 12, temperature = 0, ignore_eos = true, stop = new[] { stop } });
        Assert.Equal(text[..text.IndexOf(stop, StringComparison.Ordinal)], (string?)stopped["choices"]![0]!["text"]);
        Assert.Equal("stop", (string?)stopped["choices"]![0]!["finish_reason"]);
    }

    [Fact]
    public async Task Completions_Logprobs_ReturnsOnePerTokenWithAlternatives()
    {
        var (status, body) = await HttpJson.PostAsync(Http, "/v1/completions",
            new { model = Model, prompt = "Logprobs", max_tokens = 4, temperature = 0, logprobs = 3, ignore_eos = true });
        Assert.Equal(200, status);
        var lp = body["choices"]![0]!["logprobs"]!;
        Assert.Equal(4, lp["token_logprobs"]!.AsArray().Count);
        Assert.All(lp["token_logprobs"]!.AsArray(), x => Assert.True((double)x! <= 0));
        Assert.All(lp["top_logprobs"]!.AsArray(), x => Assert.InRange(x!.AsObject().Count, 1, 3));
    }

    [Theory]
    [InlineData("""{"model":"serving-demo-tiny","prompt":"x","temperature":"hot"}""", 400, "temperature")]
    [InlineData("""{"model":"serving-demo-tiny","prompt":"x","max_tokens":0}""", 400, "max_tokens")]
    [InlineData("""{"model":"serving-demo-tiny","prompt":"x","top_p":1.5}""", 400, "top_p")]
    [InlineData("""{"model":"serving-demo-tiny","prompt":"x","n":65}""", 400, "n")]
    [InlineData("""{"model":"serving-demo-tiny"}""", 400, "prompt")]
    [InlineData("""{"model":"serving-demo-tiny","prompt":[]}""", 400, "prompt")]
    [InlineData("""{"model":"serving-demo-tiny","prompt":[1, 99999999]}""", 400, "prompt")]
    [InlineData("""{"model":"serving-demo-tiny","prompt":"x","max_tokens":300}""", 400, "max_tokens")]
    [InlineData("""{"model":"no-such-model","prompt":"x"}""", 404, "model")]
    [InlineData("""{"prompt":"x"}""", 400, "model")]
    [InlineData("""{not json""", 400, null)]
    [InlineData("""[1,2,3]""", 400, null)]
    public async Task Completions_BadRequest_ClearOpenAiErrorAndServerKeepsServing(string body, int status, string? param)
    {
        var (actual, error) = await HttpJson.PostRawAsync(Http, "/v1/completions", body);
        Assert.Equal(status, actual);
        Assert.False(string.IsNullOrEmpty((string?)error["error"]!["message"]));
        Assert.Equal(param, (string?)error["error"]!["param"]);
        var (ok, _) = await HttpJson.PostAsync(Http, "/v1/completions", Greedy("still alive", 2));
        Assert.Equal(200, ok);
    }

    [Fact]
    public async Task Health_AliveAndReady()
    {
        Assert.Equal("ok", await Http.GetStringAsync("/healthz"));
        Assert.Equal("ready", await Http.GetStringAsync("/readyz"));
    }

    [Fact]
    public async Task VllmProbes_HealthPingAndVersion_AsVllmServesThem()
    {
        Assert.Equal("ready", await Http.GetStringAsync("/health"));
        Assert.Equal("ready", await Http.GetStringAsync("/ping"));
        using var ping = await Http.PostAsync("/ping", null);
        Assert.Equal(200, (int)ping.StatusCode);
        string version = (string)System.Text.Json.Nodes.JsonNode.Parse(await Http.GetStringAsync("/version"))!["version"]!;
        Assert.Matches(@"^\d+\.\d+\.\d+", version);
        string metrics = await Http.GetStringAsync("/metrics");
        Assert.DoesNotContain("route=\"/health\"", metrics, StringComparison.Ordinal);        // probes are not counted as requests
    }
}
