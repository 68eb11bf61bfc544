using System.Text;
using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using Serving.Server.Tests.Support;
using Serving.V1;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// Inputs at the edges: prompts at and beyond the context length (256 here; megabytes of it, thousands of prompts in one
/// list), max_tokens 0, negative and huge, and unicode edge cases in stop strings. Each gets a definite answer — a completion or a 400 naming the field — never a 500.
/// </summary>
public sealed class EdgeInputTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    private const string Model = "serving-demo-tiny";
    private const int Context = 256;
    private static readonly string Huge = string.Concat(Enumerable.Repeat("hi ", 1_000_000));

    private static int[] Tokens(int count) => Enumerable.Range(0, count).Select(i => 100 + i % 200).ToArray();

    private Task<(int Status, JsonNode Body)> Complete(object body) => HttpJson.PostAsync(fixture.Http, "/v1/completions", body);

    [Theory]
    [InlineData("/tokenize")]
    [InlineData("/v1/chat/completions")]
    public async Task Chat_KeyGivenTwiceInAMessageToolOrTemplateArgument_LastValueAsPythonReadsIt(string path)
    {
        // Found by a probe on 2026-12-05: a repeated key in a message, a tool or chat_template_kwargs was a 500.
        const string twice = """
            {"model": "serving-demo-tiny", "max_tokens": 1, "return_token_ids": true,
             "messages": [{"role": "user", "content": "first", "content": "second"}],
             "tools": [{"type": "function", "function": {"name": "a", "name": "b", "parameters": {}}}], "tool_choice": "required",
             "chat_template_kwargs": {"x": 1, "x": 2}}
            """;
        var (status, body) = await HttpJson.PostRawAsync(fixture.Http, path, twice);
        Assert.True(status == 200, body.ToJsonString());
        var (_, once) = await HttpJson.PostRawAsync(fixture.Http, "/tokenize", twice.Replace("\"content\": \"first\", ", "", StringComparison.Ordinal));
        var ids = path == "/tokenize" ? body["tokens"] : body["prompt_token_ids"];
        Assert.Equal(once["tokens"]!.ToJsonString(), ids!.ToJsonString());
        var (_, first) = await HttpJson.PostRawAsync(fixture.Http, "/tokenize", twice.Replace("\"content\": \"second\"", "\"content\": \"first\"", StringComparison.Ordinal));
        Assert.NotEqual(first["tokens"]!.ToJsonString(), ids.ToJsonString());
    }

    [Fact]
    public async Task Completion_PromptOneShortOfContext_OneTokenThenLength()
    {
        var (status, body) = await Complete(new { model = Model, prompt = Tokens(Context - 1), max_tokens = 1, ignore_eos = true });
        Assert.True(status == 200, body.ToJsonString());
        Assert.Equal("length", (string)body["choices"]![0]!["finish_reason"]!);
        Assert.Equal(1, (int)body["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Completion_NoMaxTokensNearContext_StopsAtTheContextEdge()
    {
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "/v1/chat/completions",
            new { model = Model, messages = new[] { new { role = "user", content = string.Join(' ', Enumerable.Repeat("word", 40)) } }, ignore_eos = true });
        Assert.True(status == 200, body.ToJsonString());
        Assert.Equal(Context, (int)body["usage"]!["total_tokens"]!);
    }

    [Theory]
    [InlineData(Context, 1, "prompt")]
    [InlineData(Context + 1, 1, "prompt")]
    [InlineData(Context * 40, 1, "prompt")]
    [InlineData(Context - 1, 2, "max_tokens")]
    public async Task Completion_BeyondContext_400NamingTheField(int promptTokens, int maxTokens, string field)
    {
        var (status, body) = await Complete(new { model = Model, prompt = Tokens(promptTokens), max_tokens = maxTokens });
        Assert.True(status == 400, body.ToJsonString());
        Assert.Equal(field, (string?)body["error"]!["param"]);
        Assert.Contains("context length", (string)body["error"]!["message"]!, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("2147483647")]
    [InlineData("2147483648")]
    [InlineData("1e30")]
    [InlineData("1.5")]
    [InlineData("\"16\"")]
    [InlineData("null")]
    public async Task Completion_OddMaxTokens_200Or400NamingMaxTokens(string maxTokens)
    {
        using var content = new StringContent($$"""{"model":"{{Model}}","prompt":"edge","max_tokens":{{maxTokens}}}""", Encoding.UTF8, "application/json");
        using var response = await fixture.Http.PostAsync("/v1/completions", content);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        if (maxTokens == "null")
        {
            Assert.True(response.IsSuccessStatusCode, body.ToJsonString());   // null = the default
            return;
        }

        Assert.True((int)response.StatusCode == 400, $"{maxTokens}: {(int)response.StatusCode} {body.ToJsonString()}");
        Assert.Equal("max_tokens", (string?)body["error"]!["param"]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(int.MaxValue)]
    public async Task Generate_OddMaxTokens_InvalidArgument(int maxTokens)
    {
        using var channel = GrpcChannel.ForAddress(fixture.Server.Address);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await new V1.Generation.GenerationClient(channel)
            .GenerateAsync(new GenerateRequest { Model = Model, Prompt = "edge", MaxTokens = maxTokens }));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Contains("max_tokens", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Generate_PromptBeyondContext_InvalidArgument()
    {
        using var channel = GrpcChannel.ForAddress(fixture.Server.Address);
        var request = new GenerateRequest { Model = Model, MaxTokens = 1 };
        request.PromptTokenIds.AddRange(Tokens(Context));
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await new V1.Generation.GenerationClient(channel).GenerateAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Contains("context length", ex.Status.Detail, StringComparison.Ordinal);
    }

    public static TheoryData<string> OddStops() => new()
    {
        "", "\u0000", "🙂", "e\u0301", "\u202Eevil", "\uFEFF", "\u00A0", "ß", "İ", "\r\n", new string('é', 2000), "\uFFFD",
    };

    [Theory]
    [MemberData(nameof(OddStops))]
    public async Task Completion_UnicodeStopStrings_DefiniteAnswer(string stop)
    {
        var (status, body) = await Complete(new { model = Model, prompt = "Unicode", max_tokens = 16, temperature = 0, ignore_eos = true, stop = new[] { stop } });
        Assert.True(status is 200 or 400, body.ToJsonString());
        if (status == 400)
            Assert.Equal("stop", (string?)body["error"]!["param"]);
        else if (stop.Length > 0)
            Assert.DoesNotContain(stop, (string)body["choices"]![0]!["text"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Completion_LoneSurrogateInStop_400NamingWhere()
    {
        // A JSON escape the parser accepts but no string can hold (it was a 500 before this suite).
        using var content = new StringContent($$"""{"model":"{{Model}}","prompt":"x","max_tokens":4,"stop":["\ud800"]}""", Encoding.UTF8, "application/json");
        using var response = await fixture.Http.PostAsync("/v1/completions", content);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, body);
        Assert.Contains("$.stop[0]", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Completion_NonAsciiStopInsideGeneratedText_CutsBeforeIt()
    {
        // Greedy text of the demo model (random weights, byte-level BPE) is mostly non-ASCII: a stop string made of one such
        // character must be found even when its UTF-8 bytes arrive in separate tokens.
        var (status, body) = await Complete(new { model = Model, prompt = "Stop inside", max_tokens = 64, temperature = 0, ignore_eos = true });
        Assert.True(status == 200, body.ToJsonString());
        string text = (string)body["choices"]![0]!["text"]!;
        int at = Enumerable.Range(1, Math.Max(0, text.Length - 1)).FirstOrDefault(i => text[i] > 127 && !char.IsSurrogate(text[i]) && text[i] != '\uFFFD');
        Assert.True(at > 0, $"no non-ASCII character in the greedy text: {text}");
        string stop = text[at].ToString();
        int first = text.IndexOf(stop, StringComparison.Ordinal);
        var (status2, cut) = await Complete(new { model = Model, prompt = "Stop inside", max_tokens = 64, temperature = 0, ignore_eos = true, stop = new[] { stop } });
        Assert.True(status2 == 200, cut.ToJsonString());
        Assert.Equal(text[..first], (string)cut["choices"]![0]!["text"]!);
        Assert.Equal("stop", (string)cut["choices"]![0]!["finish_reason"]!);
    }

    // Far past the context: refused early (the tokenizer stops once the prompt certainly fills it; a list is counted
    // before any of it is tokenized), on every front door, with other requests served beside.
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
