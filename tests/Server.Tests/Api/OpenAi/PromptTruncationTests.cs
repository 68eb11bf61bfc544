using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// vLLM's <c>truncate_prompt_tokens</c> through the real server: a prompt keeps its last tokens, the output is the one
/// those tokens alone give, and a prompt far past the context is served instead of refused.
/// </summary>
[Collection(nameof(CompletionsServer))]
public sealed class PromptTruncationTests(DemoServerFixture fixture)
{
    private const string Model = "serving-demo-tiny";
    private const int Context = 256;                     // the demo fixture's --max-context
    private HttpClient Http => fixture.Http;

    private async Task<JsonNode> Ok(string path, JsonObject body)
    {
        body["model"] = Model;
        body["temperature"] = 0;
        body["return_token_ids"] = true;
        var (status, answer) = await HttpJson.PostRawAsync(Http, path, body.ToJsonString());
        Assert.True(status == 200, answer.ToJsonString());
        return answer;
    }

    private static int[] Ids(JsonNode? list) => list!.AsArray().Select(t => (int)t!).ToArray();

    [Fact]
    public async Task Completions_TruncatePromptTokens_KeepsTheLastTokensAndAnswersAsThoseAlone()
    {
        const string prompt = "The quick brown fox jumps over the lazy dog while the cat watches from the warm windowsill";
        var whole = await Ok("/v1/completions", new JsonObject { ["prompt"] = prompt, ["max_tokens"] = 6 });
        int[] all = Ids(whole["prompt_token_ids"]);

        var cut = await Ok("/v1/completions", new JsonObject { ["prompt"] = prompt, ["max_tokens"] = 6, ["truncate_prompt_tokens"] = 5 });
        var alone = await Ok("/v1/completions", new JsonObject { ["prompt"] = new JsonArray(all[^5..].Select(i => (JsonNode)i).ToArray()), ["max_tokens"] = 6 });
        var idsCut = await Ok("/v1/completions", new JsonObject { ["prompt"] = new JsonArray(all.Select(i => (JsonNode)i).ToArray()), ["max_tokens"] = 6, ["truncate_prompt_tokens"] = 5 });

        Assert.True(all.Length > 10);
        Assert.Equal(all[^5..], Ids(cut["prompt_token_ids"]));
        Assert.Equal(5, (int)cut["usage"]!["prompt_tokens"]!);
        Assert.Equal(Ids(alone["choices"]![0]!["token_ids"]), Ids(cut["choices"]![0]!["token_ids"]));
        Assert.Equal(Ids(alone["choices"]![0]!["token_ids"]), Ids(idsCut["choices"]![0]!["token_ids"]));
        Assert.Equal(Ids(whole["prompt_token_ids"]), Ids((await Ok("/v1/completions",
            new JsonObject { ["prompt"] = prompt, ["max_tokens"] = 6, ["truncate_prompt_tokens"] = all.Length + 9 }))["prompt_token_ids"]));
    }

    [Fact]
    public async Task Generate_TruncatePromptTokens_SameAsRest()
    {
        const string prompt = "Over gRPC the prompt is cut the same way as over REST, keeping only its end";
        var rest = await Ok("/v1/completions", new JsonObject { ["prompt"] = prompt, ["max_tokens"] = 5, ["truncate_prompt_tokens"] = 6 });
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(fixture.Server.Address);
        var client = new V1.Generation.GenerationClient(channel);

        var reply = await client.GenerateAsync(new V1.GenerateRequest { Model = Model, Prompt = prompt, MaxTokens = 5, Temperature = 0, TruncatePromptTokens = 6 });
        var refused = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(async () =>
            await client.GenerateAsync(new V1.GenerateRequest { Model = Model, Prompt = prompt, MaxTokens = 5, TruncatePromptTokens = -7 }));

        Assert.Equal(Ids(rest["choices"]![0]!["token_ids"]), reply.TokenIds);
        Assert.Equal(global::Grpc.Core.StatusCode.InvalidArgument, refused.StatusCode);
        Assert.Contains("truncate_prompt_tokens", refused.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Completions_PromptFarPastTheContextWithMinusOne_KeepsWhatLeavesRoomForMaxTokens()
    {
        string prompt = string.Concat(Enumerable.Repeat("a long document line that goes on; ", 400));
        var (refused, _) = await HttpJson.PostAsync(Http, "/v1/completions", new { model = Model, prompt, max_tokens = 4 });

        var answer = await Ok("/v1/completions", new JsonObject { ["prompt"] = prompt, ["max_tokens"] = 4, ["truncate_prompt_tokens"] = -1, ["echo"] = true });

        Assert.Equal(400, refused);
        Assert.Equal(Context - 4, (int)answer["usage"]!["prompt_tokens"]!);
        Assert.Equal(4, (int)answer["usage"]!["completion_tokens"]!);
        string text = (string)answer["choices"]![0]!["text"]!;
        Assert.True(text.Length < prompt.Length && prompt.Contains(text[..^40][10..], StringComparison.Ordinal), "echo shows the kept prompt");
    }

    [Fact]
    public async Task Chat_TruncatePromptTokens_TheRenderedConversationKeepsItsEnd()
    {
        var body = () => new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = string.Concat(Enumerable.Repeat("tell me more about it. ", 200)) }),
            ["max_tokens"] = 3,
        };
        var cut = body();
        cut["truncate_prompt_tokens"] = 40;

        var answer = await Ok("/v1/chat/completions", cut);

        Assert.Equal(40, (int)answer["usage"]!["prompt_tokens"]!);
        var whole = body();
        whole["model"] = Model;
        var (refused, _) = await HttpJson.PostRawAsync(Http, "/v1/chat/completions", whole.ToJsonString());
        Assert.Equal(400, refused);
    }

    [Theory]
    [InlineData("/v1/completions", "{\"truncate_prompt_tokens\": 0}", "must be -1")]
    [InlineData("/v1/completions", "{\"truncate_prompt_tokens\": -2}", "must be in")]
    [InlineData("/v1/completions", "{\"truncate_prompt_tokens\": 257}", "more than this model's maximum context length 256")]
    [InlineData("/v1/completions", "{\"truncate_prompt_tokens\": \"all\"}", "must be an integer")]
    [InlineData("/v1/chat/completions", "{\"truncate_prompt_tokens\": -1}", "needs max_tokens")]
    public async Task Requests_TruncatePromptTokensOutOfRange_400NamingIt(string path, string extra, string problem)
    {
        var body = JsonNode.Parse(extra)!.AsObject();
        body["model"] = Model;
        if (path.Contains("chat", StringComparison.Ordinal))
            body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" });
        else
        {
            body["prompt"] = "hi";
            body["max_tokens"] = 2;
        }

        var (status, answer) = await HttpJson.PostRawAsync(Http, path, body.ToJsonString());

        HttpJson.AssertBadRequest(status, answer, "truncate_prompt_tokens", problem);
    }
}
