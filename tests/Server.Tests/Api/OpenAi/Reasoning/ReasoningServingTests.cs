using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi.Reasoning;

/// <summary>
/// Reasoning through a real server started with <c>--reasoning-parser qwen3 --tool-call-parser hermes</c> on a
/// random-weight model: its free text, which never closes a think block, is all reasoning while thinking is on and all
/// content when <c>enable_thinking</c> is false; an output format then waits for the block's end; a text held by a regex
/// to a think block, then a call, comes back as <c>reasoning</c> and <c>tool_calls</c>, whole and streamed alike, and
/// <c>include_reasoning: false</c> leaves the reasoning out.
/// </summary>
public sealed class ReasoningServingTests : IAsyncLifetime
{
    private const string Weather = """{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}""";

    private readonly string _root = TestDirectories.Path("reasoning");
    private ServerProcess _server = null!;

    public async Task InitializeAsync() =>
        _server = await ToolTemplateServer.StartAsync(_root, "thinker", 19, "--reasoning-parser", "qwen3", "--tool-call-parser", "hermes");

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private static JsonObject Request(string extra) => HttpJson.GreedyChat("thinker", "Weather in Paris?", 120, JsonNode.Parse(extra)!.AsObject());

    private Task<JsonNode> Complete(JsonObject body) => HttpJson.FirstChatChoiceAsync(_server.Http, body);

    /// <summary>The streamed deltas' reasoning, content and calls joined as a client joins them, and the last finish reason.</summary>
    private async Task<(string Reasoning, string? Content, string Calls, string? Finish, bool AnyReasoningContent)> Stream(JsonObject body)
    {
        body["stream"] = true;
        var events = await HttpJson.StreamAsync(_server.Http, "/v1/chat/completions", JsonSerializer.Deserialize<JsonElement>(body.ToJsonString()));
        string reasoning = "", calls = "";
        string? content = null, finish = null;
        bool anyReasoningContent = false;
        foreach (string data in events.Where(d => d != "[DONE]"))
        {
            var choice = JsonNode.Parse(data)!["choices"]![0]!;
            var delta = choice["delta"]!;
            reasoning += (string?)delta["reasoning"] ?? "";
            anyReasoningContent |= delta["reasoning_content"] is not null;
            if ((string?)delta["content"] is { Length: > 0 } text)
                content = (content ?? "") + text;
            foreach (var call in delta["tool_calls"]?.AsArray() ?? [])
                calls += (string?)call!["function"]!["name"] + (string?)call["function"]!["arguments"];
            finish = (string?)choice["finish_reason"] ?? finish;
        }

        return (reasoning, content, calls, finish, anyReasoningContent);
    }

    [Fact]
    public async Task ChatCompletions_ThinkingOnAndTheBlockNeverClosed_AllReasoning()
    {
        var body = Request("""{"max_tokens": 8}""");
        var choice = await Complete(body);
        var message = choice["message"]!;
        Assert.Null(message["content"]);
        Assert.False(string.IsNullOrEmpty((string?)message["reasoning"]));
        Assert.Equal((string?)message["reasoning"], (string?)message["reasoning_content"]);
        Assert.Equal("length", (string?)choice["finish_reason"]);

        var streamed = await Stream(body);
        Assert.Equal((string?)message["reasoning"], streamed.Reasoning);
        Assert.Null(streamed.Content);
    }

    [Fact]
    public async Task ChatCompletions_ThinkingDisabled_AllContent()
    {
        var choice = await Complete(Request("""{"max_tokens": 8, "chat_template_kwargs": {"enable_thinking": false}}"""));
        Assert.Null(choice["message"]!["reasoning"]);
        Assert.False(string.IsNullOrEmpty((string?)choice["message"]!["content"]));
    }

    [Fact]
    public async Task ChatCompletions_ThinkBlockThenCall_ReasoningAndTheCallWholeAndStreamed()
    {
        string regex = "<think>\\nThe user wants the weather\\.\\n</think>\\n\\n<tool_call>\\n\\{\"name\": \"get_weather\", \"arguments\": \\{\"city\": \"Paris\"\\}\\}\\n</tool_call>";
        // Thinking off, so the format holds the whole text; the think block it writes is still read as reasoning.
        var body = Request(JsonSerializer.Serialize(new { tools = new[] { JsonNode.Parse(Weather) }, structured_outputs = new { regex },
            chat_template_kwargs = new { enable_thinking = false } }));

        var choice = await Complete(body);
        var message = choice["message"]!;
        Assert.Equal("tool_calls", (string?)choice["finish_reason"]);
        Assert.Equal("\nThe user wants the weather.\n", (string?)message["reasoning"]);
        Assert.Null(message["content"]);
        Assert.Equal("{\"city\": \"Paris\"}", (string?)message["tool_calls"]![0]!["function"]!["arguments"]);

        var streamed = await Stream(body);
        Assert.Equal("\nThe user wants the weather.\n", streamed.Reasoning);
        Assert.True(streamed.AnyReasoningContent);
        Assert.Null(streamed.Content);
        Assert.Equal("get_weather{\"city\": \"Paris\"}", streamed.Calls);
        Assert.Equal("tool_calls", streamed.Finish);

        body["include_reasoning"] = false;
        body.Remove("stream");
        var without = (await Complete(body))["message"]!;
        Assert.Null(without["reasoning"]);
        Assert.Null(without["reasoning_content"]);
        Assert.Single(without["tool_calls"]!.AsArray());
        var streamedWithout = await Stream(body);
        Assert.Equal("", streamedWithout.Reasoning);
        Assert.False(streamedWithout.AnyReasoningContent);
    }

    [Fact]
    public async Task ChatCompletions_FormatWhileThinking_HoldsOnlyTheAnswer()
    {
        // Thinking on: the format waits for </think>, which random weights never write, so all is reasoning, cut short.
        var thinking = await Complete(Request("""{"response_format": {"type": "json_object"}, "max_tokens": 12}"""));
        Assert.Null(thinking["message"]!["content"]);
        Assert.False(string.IsNullOrEmpty((string?)thinking["message"]!["reasoning"]));
        Assert.Equal("length", (string?)thinking["incomplete_details"]!["reason"]);

        // Thinking off: the format holds the text from its first token.
        var answer = await Complete(Request("""{"response_format": {"type": "json_object"}, "max_tokens": 12, "chat_template_kwargs": {"enable_thinking": false}}"""));
        Assert.Null(answer["message"]!["reasoning"]);
        Assert.StartsWith("{", (string?)answer["message"]!["content"], StringComparison.Ordinal);

        var call = await Complete(Request(JsonSerializer.Serialize(new
        {
            tools = new[] { JsonNode.Parse(Weather) },
            tool_choice = new { type = "function", function = new { name = "get_weather" } },
            chat_template_kwargs = new { enable_thinking = false },
            max_tokens = 60,
        })));
        Assert.Null(call["message"]!["reasoning"]);
        Assert.Equal("get_weather", (string?)call["message"]!["tool_calls"]![0]!["function"]!["name"]);
    }
}
