using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi.Responses;

/// <summary>
/// Token log-probabilities on <c>/v1/responses</c> (<c>include: ["message.output_text.logprobs"]</c>, <c>top_logprobs</c>)
/// through the real server: the answer's output_text holds one entry per output token, the same entries chat completions
/// give for the same conversation, and streamed deltas carry them in pieces that add up to the done event's and the final
/// response's.
/// </summary>
public sealed class ResponsesLogprobsTests(StructuredOutputServerFixture fixture) : IClassFixture<StructuredOutputServerFixture>
{
    private const int Tokens = 9;

    private static JsonObject Request(bool stream = false) => new()
    {
        ["model"] = "base", ["instructions"] = "Answer briefly.", ["input"] = "Name a river.", ["max_output_tokens"] = Tokens, ["temperature"] = 0,
        ["include"] = new JsonArray("message.output_text.logprobs"), ["top_logprobs"] = 3, ["stream"] = stream, ["store"] = false,
    };

    [Fact]
    public async Task Responses_LogprobsIncluded_OneEntryPerTokenAsChatGivesThem()
    {
        var (chatStatus, chat) = await HttpJson.PostAsync(fixture.Http, "/v1/chat/completions", new JsonObject
        {
            ["model"] = "base", ["max_tokens"] = Tokens, ["temperature"] = 0, ["logprobs"] = true, ["top_logprobs"] = 3,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "system", ["content"] = "Answer briefly." }, new JsonObject { ["role"] = "user", ["content"] = "Name a river." }),
        });
        Assert.True(chatStatus == 200, chat.ToJsonString());

        var (status, response) = await HttpJson.PostAsync(fixture.Http, "/v1/responses", Request());

        Assert.True(status == 200, response.ToJsonString());
        var text = response["output"]!.AsArray().Single(i => (string?)i!["type"] == "message")!["content"]![0]!;
        var entries = text["logprobs"]!.AsArray();
        Assert.Equal(Tokens, entries.Count);
        Assert.Equal((int)response["usage"]!["output_tokens"]!, entries.Count);
        Assert.All(entries, e => Assert.Equal(3, e!["top_logprobs"]!.AsArray().Count));
        Assert.All(entries, e => Assert.True((double)e!["logprob"]! <= 0));
        Assert.Equal(chat["choices"]![0]!["logprobs"]!["content"]!.ToJsonString(), entries.ToJsonString());
        Assert.Equal((string)text["text"]!, System.Text.Encoding.UTF8.GetString(entries.SelectMany(e => e!["bytes"]!.AsArray().Select(b => (byte)(int)b!)).ToArray()));
    }

    [Fact]
    public async Task ResponsesStreaming_LogprobsIncluded_DeltasAddUpToTheDoneEventAndTheResponse()
    {
        var (_, whole) = await HttpJson.PostAsync(fixture.Http, "/v1/responses", Request());
        string expected = whole["output"]![0]!["content"]![0]!["logprobs"]!.ToJsonString();

        var events = (await HttpJson.StreamAsync(fixture.Http, "/v1/responses", Request(stream: true))).Select(e => JsonNode.Parse(e)!).ToList();

        var fromDeltas = new JsonArray(events.Where(e => (string?)e["type"] == "response.output_text.delta")
            .SelectMany(e => e["logprobs"]!.AsArray().Select(x => x!.DeepClone())).ToArray());
        var done = events.Single(e => (string?)e["type"] == "response.output_text.done");
        var final = events.Single(e => (string?)e["type"] is "response.completed" or "response.incomplete")["response"]!;
        Assert.Equal(expected, fromDeltas.ToJsonString());
        Assert.Equal(expected, done["logprobs"]!.ToJsonString());
        Assert.Equal(expected, final["output"]![0]!["content"]![0]!["logprobs"]!.ToJsonString());
    }

    [Theory]
    [InlineData("""{"model": "base", "input": "x", "include": ["reasoning.encrypted_content"]}""", "include[0]", "'message.output_text.logprobs' is")]
    [InlineData("""{"model": "base", "input": "x", "include": "message.output_text.logprobs"}""", "include", "must be a list")]
    [InlineData("""{"model": "base", "input": "x", "top_logprobs": 2}""", "top_logprobs", "needs 'include'")]
    [InlineData("""{"model": "base", "input": "x", "include": ["message.output_text.logprobs"], "top_logprobs": 21}""", "top_logprobs", "")]
    [InlineData("""{"model": "base", "input": "x", "include": ["message.output_text.logprobs"], "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]}""",
        "include", "not supported with tools")]
    public async Task Responses_LogprobsAskedWrongly_400NamingTheField(string request, string param, string problem)
    {
        var (status, body) = await HttpJson.PostRawAsync(fixture.Http, "/v1/responses", request);

        HttpJson.AssertBadRequest(status, body, param, problem);
    }
}
