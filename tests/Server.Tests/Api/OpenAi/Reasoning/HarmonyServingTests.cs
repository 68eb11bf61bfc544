using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Server.Api.OpenAi;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi.Reasoning;

/// <summary>
/// gpt-oss's harmony output through a real server started with <c>--reasoning-parser openai_gptoss --tool-call-parser
/// openai</c>: a text held by a regex to harmony messages (an analysis, then a call to a function, or the final answer)
/// comes back as <c>reasoning</c>, <c>tool_calls</c> and <c>content</c>, whole and streamed alike. The regex holds the
/// whole text, reasoning included (<c>--structured-outputs-config '{"enable_in_reasoning": true}'</c>; by default a format
/// holds the final answer only, HarmonyStructuredOutputTests).
/// </summary>
public sealed class HarmonyServingTests : IAsyncLifetime
{
    private const string Weather = """{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}""";
    private const string Analysis = @"<\|channel\|>analysis<\|message\|>Need the weather\.<\|end\|><\|start\|>assistant";

    private readonly string _root = TestDirectories.Path("harmony");
    private ServerProcess _server = null!;

    /// <summary>Harmony's shape as gpt-oss's template writes it: an assistant's <c>thinking</c> as an analysis message before its call.</summary>
    private const string Template =
        "{% for m in messages %}{% if m['thinking'] is defined %}<|start|>assistant<|channel|>analysis<|message|>{{ m['thinking'] }}<|end|>{% endif %}"
        + "<|start|>{{ m['role'] }}<|message|>{{ m['content'] or '' }}<|end|>{% endfor %}{% if add_generation_prompt %}<|start|>assistant{% endif %}";

    public async Task InitializeAsync() =>
        _server = await ToolTemplateServer.StartWithTemplateAsync(_root, "harmony", 23, Template, "--reasoning-parser", "openai_gptoss", "--tool-call-parser", "openai",
            "--structured-outputs-config", """{"enable_in_reasoning": true}""");

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private static JsonObject Request(string regex, bool tools = true) => HttpJson.GreedyChat("harmony", "Weather in Paris?", 120, JsonNode.Parse(
        JsonSerializer.Serialize(new { tools = tools ? new[] { JsonNode.Parse(Weather) } : null, structured_outputs = new { regex } }))!.AsObject());

    private async Task<(string Reasoning, string? Content, string Calls, string? Finish)> Stream(JsonObject body)
    {
        body["stream"] = true;
        var events = await HttpJson.StreamAsync(_server.Http, "/v1/chat/completions", JsonSerializer.Deserialize<JsonElement>(body.ToJsonString()));
        string reasoning = "", calls = "";
        string? content = null, finish = null;
        foreach (string data in events.Where(d => d != "[DONE]"))
        {
            var choice = JsonNode.Parse(data)!["choices"]![0]!;
            var delta = choice["delta"]!;
            reasoning += (string?)delta["reasoning"] ?? "";
            if ((string?)delta["content"] is { Length: > 0 } text)
                content = (content ?? "") + text;
            foreach (var call in delta["tool_calls"]?.AsArray() ?? [])
                calls += (string?)call!["function"]!["name"] + (string?)call["function"]!["arguments"];
            finish = (string?)choice["finish_reason"] ?? finish;
        }

        return (reasoning, content, calls, finish);
    }

    [Fact]
    public async Task ChatCompletions_AnalysisThenCall_ReasoningAndTheCallWholeAndStreamed()
    {
        var body = Request(Analysis + @"<\|channel\|>commentary to=functions\.get_weather <\|constrain\|>json<\|message\|>\{""city"": ""Paris""\}<\|call\|>");

        var choice = await HttpJson.FirstChatChoiceAsync(_server.Http, body);
        var message = choice["message"]!;
        Assert.Equal("tool_calls", (string?)choice["finish_reason"]);
        Assert.Equal("Need the weather.", (string?)message["reasoning"]);
        Assert.Null(message["content"]);
        Assert.Equal("get_weather", (string?)message["tool_calls"]![0]!["function"]!["name"]);
        Assert.Equal("{\"city\": \"Paris\"}", (string?)message["tool_calls"]![0]!["function"]!["arguments"]);

        var streamed = await Stream(body);
        Assert.Equal(("Need the weather.", (string?)null, "get_weather{\"city\": \"Paris\"}", "tool_calls"), streamed);
    }

    [Fact]
    public async Task ChatCompletions_AnalysisThenFinal_ReasoningAndContent()
    {
        var body = Request(Analysis + @"<\|channel\|>final<\|message\|>It is sunny in Paris\.<\|return\|>", tools: false);

        var choice = await HttpJson.FirstChatChoiceAsync(_server.Http, body);

        Assert.Equal("Need the weather.", (string?)choice["message"]!["reasoning"]);
        Assert.Equal("It is sunny in Paris.", (string?)choice["message"]!["content"]);
        Assert.Equal("stop", (string?)choice["finish_reason"]);
        Assert.Equal(("Need the weather.", "It is sunny in Paris.", "", "stop"), await Stream(body));
    }

    /// <summary>
    /// The reasoning a client sends back with an assistant message (vLLM's <c>reasoning</c> or <c>reasoning_content</c>) is the
    /// <c>thinking</c> gpt-oss's template renders as the analysis before the call.
    /// </summary>
    [Fact]
    public async Task Tokenize_AssistantReasoningSentBack_RenderedAsItsThinking()
    {
        async Task<string> Tokens(string? field)
        {
            var assistant = new JsonObject { ["role"] = "assistant", ["content"] = "" };
            if (field is not null)
                assistant[field] = "Need the weather.";
            var (status, answer) = await HttpJson.PostAsync(_server.Http, "/tokenize", new JsonObject
            {
                ["model"] = "harmony",
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Weather?" }, assistant,
                    new JsonObject { ["role"] = "user", ["content"] = "And?" }),
            });
            Assert.True(status == 200, answer.ToJsonString());
            return answer["tokens"]!.ToJsonString();
        }

        string thinking = await Tokens("thinking");
        Assert.Equal(thinking, await Tokens("reasoning"));
        Assert.Equal(thinking, await Tokens("reasoning_content"));
        Assert.NotEqual(thinking, await Tokens(null));
    }

    [Theory]
    [InlineData("none", "openai", "ReasoningParser")]
    [InlineData("openai_gptoss", "hermes", "'openai' or 'none'")]
    public void Validate_HarmonyParsersMismatched_NamesTheFix(string reasoning, string tools, string named)
    {
        var errors = new ChatOptions { ReasoningParser = reasoning, ToolCallParser = tools }.Validate().ToList();

        Assert.Contains(errors, e => e.Contains(named, StringComparison.Ordinal));
        Assert.Empty(new ChatOptions { ReasoningParser = "openai_gptoss", ToolCallParser = "openai" }.Validate());
    }
}
