using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// OpenAI's <c>n</c> through the real server: several choices per prompt, each its own sequence in the batch (a seeded
/// request's choice j samples with seed + j, so it equals a one-choice request with that seed), streamed with their
/// indices, the prompt counted once in the usage.
/// </summary>
public sealed class ChoiceCountTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    private const string Model = "serving-demo-tiny";

    private async Task<JsonNode> Post(string path, object body)
    {
        var (status, answer) = await HttpJson.PostAsync(fixture.Http, path, body);
        Assert.True(status == 200, answer.ToJsonString());
        return answer;
    }

    private static List<string> Texts(JsonNode answer, bool chat) =>
        answer["choices"]!.AsArray().OrderBy(c => (int)c!["index"]!).Select(c => chat ? (string)c!["message"]!["content"]! : (string)c!["text"]!).ToList();

    [Fact]
    public async Task Completions_SeededChoices_EachEqualsAOneChoiceRequestWithItsSeed()
    {
        var answer = await Post("/v1/completions", new { model = Model, prompt = "Once upon a time", max_tokens = 8, temperature = 1.0, seed = 41, n = 3 });
        var texts = Texts(answer, chat: false);
        Assert.Equal([0, 1, 2], answer["choices"]!.AsArray().Select(c => (int)c!["index"]!).Order());
        Assert.True(texts.Distinct().Count() > 1, string.Join(" | ", texts));
        for (int j = 0; j < 3; j++)
        {
            var alone = await Post("/v1/completions", new { model = Model, prompt = "Once upon a time", max_tokens = 8, temperature = 1.0, seed = 41 + j });
            Assert.Equal((string)alone["choices"]![0]!["text"]!, texts[j]);
        }

        var single = await Post("/v1/completions", new { model = Model, prompt = "Once upon a time", max_tokens = 8 });
        Assert.Equal((int)single["usage"]!["prompt_tokens"]!, (int)answer["usage"]!["prompt_tokens"]!);
        Assert.Equal(answer["choices"]!.AsArray().Count * 8, (int)answer["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Completions_TwoPromptsTwoChoices_IndexedPromptByPrompt()
    {
        var answer = await Post("/v1/completions", new { model = Model, prompt = new[] { "Red", "Blue" }, max_tokens = 4, temperature = 0, n = 2 });
        var texts = Texts(answer, chat: false);
        Assert.Equal(4, texts.Count);
        Assert.Equal(texts[0], texts[1]);                 // greedy: the copies agree
        Assert.Equal(texts[2], texts[3]);
        var red = await Post("/v1/completions", new { model = Model, prompt = "Red", max_tokens = 4, temperature = 0 });
        Assert.Equal((string)red["choices"]![0]!["text"]!, texts[0]);
    }

    [Fact]
    public async Task ChatCompletions_StreamedChoices_SameAsWholeByIndex()
    {
        object Body(bool stream) => new
        {
            model = Model, messages = new[] { new { role = "user", content = "Tell me a story" } }, max_tokens = 10, temperature = 1.0, seed = 7, n = 3, stream,
            stream_options = stream ? new { include_usage = true } : null,
        };
        var whole = await Post("/v1/chat/completions", Body(false));
        var texts = Texts(whole, chat: true);

        var streamed = new string[3];
        JsonNode? usage = null;
        var events = await HttpJson.StreamAsync(fixture.Http, "/v1/chat/completions", Body(true));
        foreach (string data in events.Where(d => d != "[DONE]"))
        {
            var chunk = JsonNode.Parse(data)!;
            usage ??= chunk["usage"];
            foreach (var choice in chunk["choices"]!.AsArray())
                streamed[(int)choice!["index"]!] += (string?)choice["delta"]!["content"] ?? "";
        }

        Assert.Equal(texts, streamed);
        Assert.Equal(whole["usage"]!.ToJsonString(), usage!.ToJsonString());
    }

    [Theory]
    [InlineData("/v1/completions")]
    [InlineData("/v1/chat/completions")]
    public async Task Stream_ContinuousUsageStats_EveryChunkCarriesTheUsageSoFar(string path)
    {
        bool chat = path.Contains("chat", StringComparison.Ordinal);
        var body = new JsonObject
        {
            ["model"] = Model, ["max_tokens"] = 6, ["ignore_eos"] = true, ["temperature"] = 0, ["n"] = 2, ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true, ["continuous_usage_stats"] = true },
        };
        if (chat)
            body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Count with me" });
        else
            body["prompt"] = "Count with me";
        var events = await HttpJson.StreamAsync(fixture.Http, path, JsonSerializer.Deserialize<JsonElement>(body.ToJsonString()));
        var chunks = events.Where(d => d != "[DONE]").Select(d => JsonNode.Parse(d)!).Where(c => c["choices"]!.AsArray().Count > 0 && c["choices"]![0]!["delta"]?["role"] is null).ToList();
        Assert.NotEmpty(chunks);
        int previous = 0, prompt = (int)chunks[0]["usage"]!["prompt_tokens"]!;
        foreach (var chunk in chunks)
        {
            int completion = (int)chunk["usage"]!["completion_tokens"]!;
            Assert.True(completion >= previous, $"{completion} after {previous}");
            Assert.Equal(prompt, (int)chunk["usage"]!["prompt_tokens"]!);
            previous = completion;
        }

        Assert.Equal(12, previous);
        var last = JsonNode.Parse(events[^2])!;
        Assert.Equal(12, (int)last["usage"]!["completion_tokens"]!);

        body["stream_options"] = new JsonObject { ["continuous_usage_stats"] = true };
        var (status, answer) = await HttpJson.PostRawAsync(fixture.Http, path, body.ToJsonString());
        Assert.Equal(400, status);
        Assert.Equal("stream_options.continuous_usage_stats", (string?)answer["error"]!["param"]);
    }

    [Theory]
    [InlineData("/v1/completions", """{"n": 65}""")]
    [InlineData("/v1/completions", """{"n": 0}""")]
    [InlineData("/v1/completions", """{"n": 2.5}""")]
    [InlineData("/v1/chat/completions", """{"n": 100}""")]
    public async Task Requests_ChoiceCountOutOfRange_400NamingN(string path, string extra)
    {
        var (status, answer) = await HttpJson.PostSmallestAsync(fixture.Http, path, Model, extra, maxTokens: 2);
        Assert.Equal(400, status);
        Assert.Equal("n", (string?)answer["error"]!["param"]);
    }

    [Fact]
    public async Task Completions_TooManyPromptsTimesChoices_400NamingN()
    {
        var body = JsonSerializer.Serialize(new { model = Model, prompt = Enumerable.Range(0, 64).Select(i => $"p{i}").ToArray(), max_tokens = 1, n = 5 });
        var (status, answer) = await HttpJson.PostRawAsync(fixture.Http, "/v1/completions", body);
        Assert.Equal(400, status);
        Assert.Equal("n", (string?)answer["error"]!["param"]);
    }
}
