using System.Globalization;
using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// vLLM's <c>use_beam_search</c> through the real server: width 1 is greedy decoding, and a two-step search keeps exactly
/// the best two-token continuations a search written here from the server's own single-token logprobs finds.
/// </summary>
[Collection(nameof(CompletionsServer))]
public sealed class BeamSearchTests(DemoServerFixture fixture)
{
    private const string Model = "serving-demo-tiny";
    private HttpClient Http => fixture.Http;

    private async Task<JsonNode> Ok(string path, JsonObject body)
    {
        body["model"] = Model;
        var (status, answer) = await HttpJson.PostRawAsync(Http, path, body.ToJsonString());
        Assert.True(status == 200, answer.ToJsonString());
        return answer;
    }

    private static int[] Ids(JsonNode? list) => list!.AsArray().Select(t => (int)t!).ToArray();

    private static JsonArray Array(IEnumerable<int> ids) => new(ids.Select(i => (JsonNode)i).ToArray());

    /// <summary>The 2·width most likely next tokens after <paramref name="prompt"/> and their logprobs, from a one-token completion.</summary>
    private async Task<List<(int Id, double Logprob)>> NextAsync(int[] prompt, int count)
    {
        var answer = await Ok("/v1/completions", new JsonObject
        {
            ["prompt"] = Array(prompt), ["max_tokens"] = 1, ["temperature"] = 0, ["logprobs"] = count, ["return_tokens_as_token_ids"] = true,
        });
        return answer["choices"]![0]!["logprobs"]!["top_logprobs"]![0]!.AsObject()
            .Select(kv => (int.Parse(kv.Key["token_id:".Length..], CultureInfo.InvariantCulture), (double)kv.Value!)).ToList();
    }

    [Fact]
    public async Task Completions_BeamWidthOne_IsGreedyDecoding()
    {
        var greedy = await Ok("/v1/completions", new JsonObject { ["prompt"] = "Once upon a time", ["max_tokens"] = 8, ["temperature"] = 0, ["ignore_eos"] = true, ["return_token_ids"] = true });
        var beam = await Ok("/v1/completions", new JsonObject
        {
            ["prompt"] = "Once upon a time", ["max_tokens"] = 8, ["use_beam_search"] = true, ["n"] = 1, ["ignore_eos"] = true, ["return_token_ids"] = true,
        });

        Assert.Equal(Ids(greedy["choices"]![0]!["token_ids"]), Ids(beam["choices"]![0]!["token_ids"]));
        Assert.Equal((string)greedy["choices"]![0]!["text"]!, (string)beam["choices"]![0]!["text"]!);
        Assert.Equal("length", (string)beam["choices"]![0]!["finish_reason"]!);
    }

    [Fact]
    public async Task Completions_TwoStepsOfWidthThree_TheBestContinuationsOfASearchFromTheModelsLogprobs()
    {
        const int width = 3;
        var tokenized = await HttpJson.PostAsync(Http, "/tokenize", new { model = Model, prompt = "The river bank" });
        int[] prompt = Ids(tokenized.Body["tokens"]);
        var first = (await NextAsync(prompt, 2 * width)).OrderByDescending(c => c.Logprob).Take(width).ToList();
        var pairs = new List<(int A, int B, double Logprob)>();
        foreach (var (a, la) in first)
            foreach (var (b, lb) in await NextAsync([.. prompt, a], 2 * width))
                pairs.Add((a, b, la + lb));
        var expected = pairs.OrderByDescending(p => p.Logprob).Take(width).Select(p => new[] { p.A, p.B }).ToList();

        var beam = await Ok("/v1/completions", new JsonObject
        {
            ["prompt"] = Array(prompt), ["max_tokens"] = 2, ["use_beam_search"] = true, ["n"] = width, ["ignore_eos"] = true, ["return_token_ids"] = true,
        });

        var choices = beam["choices"]!.AsArray();
        Assert.Equal(expected, choices.Select(c => Ids(c!["token_ids"])).ToList());
        Assert.Equal(Enumerable.Range(0, width), choices.Select(c => (int)c!["index"]!));
        Assert.Equal(2 * width, (int)beam["usage"]!["completion_tokens"]!);
        Assert.Equal(prompt.Length, (int)beam["usage"]!["prompt_tokens"]!);
    }

    [Theory]
    [InlineData("/v1/completions")]
    [InlineData("/v1/chat/completions")]
    public async Task BeamSearch_Streamed_SameChoicesAsWhole(string path)
    {
        bool chat = path.Contains("chat", StringComparison.Ordinal);
        JsonObject Body(bool stream)
        {
            var body = new JsonObject { ["max_tokens"] = 6, ["use_beam_search"] = true, ["n"] = 3, ["stream"] = stream, ["model"] = Model };
            if (chat)
                body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Say something." });
            else
                body["prompt"] = "Say something:";
            return body;
        }

        var whole = await Ok(path, Body(stream: false));
        var events = await HttpJson.StreamAsync(Http, path, Body(stream: true));

        var texts = new string[3];
        var finishes = new string?[3];
        foreach (var e in events.Where(e => e.StartsWith('{')).Select(e => JsonNode.Parse(e)!))
            foreach (var c in e["choices"]!.AsArray())
            {
                int i = (int)c!["index"]!;
                texts[i] += chat ? (string?)c["delta"]?["content"] : (string?)c["text"];
                finishes[i] ??= (string?)c["finish_reason"];
            }

        var choices = whole["choices"]!.AsArray();
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(chat ? (string?)choices[i]!["message"]!["content"] ?? "" : (string)choices[i]!["text"]!, texts[i] ?? "");
            Assert.Equal((string)choices[i]!["finish_reason"]!, finishes[i]);
        }
    }

    [Fact]
    public async Task Chat_BeamSearch_WidthChoicesEachAMessage()
    {
        var answer = await Ok("/v1/chat/completions", HttpJson.GreedyChat(Model, "Name a colour.", 6,
            new JsonObject { ["use_beam_search"] = true, ["n"] = 2, ["length_penalty"] = 0.5 }));

        var choices = answer["choices"]!.AsArray();
        Assert.Equal(2, choices.Count);
        Assert.All(choices, c => Assert.Equal("assistant", (string)c!["message"]!["role"]!));
        Assert.All(choices, c => Assert.Contains((string)c!["finish_reason"]!, new[] { "stop", "length" }));
        Assert.NotEqual(choices[0]!["message"]!.ToJsonString(), choices[1]!["message"]!.ToJsonString());
    }

    [Theory]
    [InlineData("/v1/completions", "{\"use_beam_search\": true, \"n\": 11}", "n", "at most 10")]
    [InlineData("/v1/completions", "{\"use_beam_search\": true, \"logprobs\": 2}", "use_beam_search", "logprobs")]
    [InlineData("/v1/completions", "{\"use_beam_search\": true, \"echo\": true}", "use_beam_search", "echo")]
    [InlineData("/v1/completions", "{\"use_beam_search\": true, \"stop\": [\"x\"]}", "use_beam_search", "end-of-sequence")]
    [InlineData("/v1/completions", "{\"use_beam_search\": true, \"logit_bias\": {\"5\": 1}}", "use_beam_search", "logit_bias")]
    [InlineData("/v1/completions", "{\"length_penalty\": 0.5}", "length_penalty", "needs use_beam_search")]
    [InlineData("/v1/chat/completions", "{\"use_beam_search\": true, \"response_format\": {\"type\": \"json_object\"}}", "use_beam_search", "output format")]
    public async Task Requests_BeamSearchWithWhatItCannotHonour_400NamingIt(string path, string extra, string field, string problem)
    {
        var (status, answer) = await HttpJson.PostSmallestAsync(Http, path, Model, extra, maxTokens: 2);

        HttpJson.AssertBadRequest(status, answer, field, problem);
    }
}
