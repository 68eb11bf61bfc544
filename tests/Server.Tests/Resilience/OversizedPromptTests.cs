using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using Serving.Server.Tests.Support;
using Serving.V1;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// Prompts far past the context (megabytes of text, thousands of prompts in one list) are refused with a 400 on every
/// front door, and refused early: the tokenizer stops once the prompt certainly fills the context, and a list's length is
/// checked before any of it is tokenized. Ordinary requests are served beside them.
/// </summary>
public sealed class OversizedPromptTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    private const string Model = "serving-demo-tiny";
    private static readonly string Huge = string.Concat(Enumerable.Repeat("hi ", 1_000_000));

    [Fact]
    public async Task Completions_MegabytesOfPrompt_400NamingTheContext()
    {
        var (status, error) = await HttpJson.PostAsync(fixture.Http, "/v1/completions", new { model = Model, prompt = Huge, max_tokens = 4 });
        Assert.Equal(400, status);
        Assert.Contains("maximum context length is 256 tokens", (string?)error["error"]!["message"]);
        Assert.Equal("prompt", (string?)error["error"]!["param"]);
    }

    [Fact]
    public async Task ChatCompletions_ManyMessages_400NamingTheContext()
    {
        var messages = new JsonArray(Enumerable.Range(0, 20_000).Select(_ => (JsonNode)new JsonObject { ["role"] = "user", ["content"] = "hi" }).ToArray());
        var body = new JsonObject { ["model"] = Model, ["messages"] = messages, ["max_tokens"] = 4 };
        var (status, error) = await HttpJson.PostRawAsync(fixture.Http, "/v1/chat/completions", body.ToJsonString());
        Assert.Equal(400, status);
        Assert.Contains("maximum context length is 256 tokens", (string?)error["error"]!["message"]);
    }

    [Fact]
    public async Task Completions_ThousandsOfPromptStrings_400BeforeTokenizingThem()
    {
        var prompts = Enumerable.Repeat(Huge[..30_000], 400).ToArray();
        var (status, error) = await HttpJson.PostAsync(fixture.Http, "/v1/completions", new { model = Model, prompt = prompts, max_tokens = 4 });
        Assert.Equal(400, status);
        Assert.Contains("at most 64 prompts", (string?)error["error"]!["message"]);
    }

    [Fact]
    public async Task Generate_MegabytesOfPrompt_InvalidArgumentAndOthersServed()
    {
        using var channel = GrpcChannel.ForAddress(fixture.Server.Address, new GrpcChannelOptions { MaxSendMessageSize = 16 << 20 });
        var client = new V1.Generation.GenerationClient(channel);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await client.GenerateAsync(new GenerateRequest { Model = Model, Prompt = Huge[..1_500_000], MaxTokens = 4 }));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Contains("maximum context length", ex.Status.Detail);
        var ok = await client.GenerateAsync(new GenerateRequest { Model = Model, Prompt = "still served", MaxTokens = 4, Temperature = 0, IgnoreEos = true });
        Assert.Equal(4, ok.Usage.CompletionTokens);
    }
}
