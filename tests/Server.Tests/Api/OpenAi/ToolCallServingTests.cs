using System.ClientModel;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using Serving.Server.Tests.Api.OpenAi.Tools;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// Tool calls through a real server started with <c>--tool-call-parser hermes</c> on a random-weight model whose template
/// shows the tools: a call the model writes in Hermes' syntax (its text held to that syntax by a regex, since random
/// weights write no call of their own) comes back as <c>tool_calls</c>, whole and streamed; forced calls
/// (<c>required</c>, a named function) follow each function's schema, read by the official OpenAI client; bad tool
/// requests are 400s naming the field.
/// </summary>
public sealed class ToolCallServingTests : IAsyncLifetime
{
    private const string Weather = """
        {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
         "parameters": {"type": "object", "properties": {"city": {"enum": ["Paris", "Oslo"]}, "unit": {"$ref": "#/$defs/unit"}},
                        "required": ["city", "unit"], "additionalProperties": false,
                        "$defs": {"unit": {"enum": ["celsius", "fahrenheit"]}}}}}
        """;

    /// <summary>A second function whose <c>$defs</c> reuses the name <c>unit</c> for another set: each must keep its own.</summary>
    private const string Forecast = """
        {"type": "function", "function": {"name": "get_forecast",
         "parameters": {"type": "object", "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 7}, "unit": {"$ref": "#/$defs/unit"}},
                        "required": ["days", "unit"], "additionalProperties": false,
                        "$defs": {"unit": {"enum": ["K"]}}}}}
        """;

    private readonly string _root = TestDirectories.Path("tool-calls");
    private ServerProcess _server = null!;

    public async Task InitializeAsync() =>
        _server = await ToolTemplateServer.StartAsync(_root, "tools", 17, "--tool-call-parser", "hermes");

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private static JsonArray Tools(params string[] tools) => new(tools.Select(t => JsonNode.Parse(t)).ToArray());

    private static JsonObject Request(JsonObject extra) => HttpJson.GreedyChat("tools", "What is the weather in Paris?", 200, extra);

    private Task<JsonNode> Complete(JsonObject body) => HttpJson.FirstChatChoiceAsync(_server.Http, body);

    /// <summary>The streamed deltas assembled as a client does, with the chunks' finish reason and whether any content chunk showed markup.</summary>
    private async Task<(JsonObject Message, string? Finish, List<JsonObject> Deltas)> Stream(JsonObject body)
    {
        body["stream"] = true;
        var events = await HttpJson.StreamAsync(_server.Http, "/v1/chat/completions", JsonSerializer.Deserialize<JsonElement>(body.ToJsonString()));
        var deltas = new List<JsonObject>();
        string? finish = null;
        foreach (string data in events.Where(d => d != "[DONE]"))
        {
            var choice = JsonNode.Parse(data)!["choices"]![0]!;
            var delta = choice["delta"]!.AsObject().DeepClone().AsObject();
            delta.Remove("role");
            deltas.Add(delta);
            finish = (string?)choice["finish_reason"] ?? finish;
        }

        return (ToolCallReading.Assemble(deltas), finish, deltas);
    }

    private static string RegexOf(string text)
    {
        var sb = new StringBuilder();
        foreach (char c in text)
            sb.Append(c == '\n' ? "\\n" : ".^$*+?()[]{}|\\/".Contains(c) ? "\\" + c : c.ToString());
        return sb.ToString();
    }

    [Fact]
    public async Task ChatCompletions_AutoWithHermesParser_TheCallTheModelWroteWholeAndStreamed()
    {
        const string written = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>";
        var body = Request(new JsonObject { ["tools"] = Tools(Weather), ["structured_outputs"] = new JsonObject { ["regex"] = RegexOf(written) } });

        var choice = await Complete(body);
        Assert.Equal("tool_calls", (string?)choice["finish_reason"]);
        var message = choice["message"]!;
        Assert.Equal("Let me check.", (string?)message["content"]);
        var call = message["tool_calls"]!.AsArray().Single()!;
        Assert.Equal("function", (string?)call["type"]);
        Assert.StartsWith("chatcmpl-tool-", (string?)call["id"], StringComparison.Ordinal);
        Assert.Equal("get_weather", (string?)call["function"]!["name"]);
        Assert.Equal("{\"city\": \"Paris\", \"unit\": \"celsius\"}", (string?)call["function"]!["arguments"]);

        var (streamed, finish, deltas) = await Stream(body);
        Assert.Equal("tool_calls", finish);
        Assert.All(deltas, d => Assert.DoesNotContain("<tool", (string?)d["content"] ?? "", StringComparison.Ordinal));
        message.AsObject().Remove("tool_calls", out var calls);
        Assert.Equal("Let me check.", (string?)streamed["content"]);
        Assert.Equal(calls![0]!["function"]!.ToJsonString(), streamed["tool_calls"]![0]!["function"]!.ToJsonString());
    }

    [Fact]
    public async Task ChatCompletions_AutoButTheModelAnswersInText_ContentAndStop()
    {
        var body = Request(new JsonObject { ["tools"] = Tools(Weather), ["structured_outputs"] = new JsonObject { ["choice"] = new JsonArray("It is sunny < 30 degrees.") } });
        var choice = await Complete(body);
        Assert.Equal("stop", (string?)choice["finish_reason"]);
        Assert.Equal("It is sunny < 30 degrees.", (string?)choice["message"]!["content"]);
        Assert.Null(choice["message"]!["tool_calls"]);
        var (streamed, finish, _) = await Stream(body);
        Assert.Equal("stop", finish);
        Assert.Equal("It is sunny < 30 degrees.", (string?)streamed["content"]);
    }

    private OpenAIClient Client => new(new ApiKeyCredential("unused-in-open-mode"), new OpenAIClientOptions { Endpoint = new Uri(_server.Address, "/v1") });

    private static ChatTool ToolOf(string definition)
    {
        var function = JsonNode.Parse(definition)!["function"]!;
        return ChatTool.CreateFunctionTool((string)function["name"]!, (string?)function["description"], BinaryData.FromString(function["parameters"]!.ToJsonString()));
    }

    [Fact]
    public async Task OfficialClient_NamedFunction_ArgumentsFollowItsSchemaWholeAndStreamed()
    {
        var chat = Client.GetChatClient("tools");
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 200, Temperature = 0, ToolChoice = ChatToolChoice.CreateFunctionChoice("get_weather") };
        options.Tools.Add(ToolOf(Weather));
        options.Tools.Add(ToolOf(Forecast));

        var completion = (await chat.CompleteChatAsync([new UserChatMessage("Weather?")], options)).Value;
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        var call = Assert.Single(completion.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        using var arguments = JsonDocument.Parse(call.FunctionArguments);
        Assert.Contains(arguments.RootElement.GetProperty("city").GetString(), new[] { "Paris", "Oslo" });
        Assert.Contains(arguments.RootElement.GetProperty("unit").GetString(), new[] { "celsius", "fahrenheit" });

        var streamedArguments = new StringBuilder();
        string? name = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Weather?")], options))
            foreach (var part in update.ToolCallUpdates)
            {
                Assert.Equal(0, part.Index);
                name ??= part.FunctionName;
                streamedArguments.Append(part.FunctionArgumentsUpdate?.ToString());
            }

        Assert.Equal("get_weather", name);
        Assert.Equal(call.FunctionArguments.ToString(), streamedArguments.ToString());
    }

    [Fact]
    public async Task OfficialClient_Required_CallsOfListedFunctionsEachWithItsOwnDefinitions()
    {
        var chat = Client.GetChatClient("tools");
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 300, Temperature = 0, ToolChoice = ChatToolChoice.CreateRequiredChoice() };
        options.Tools.Add(ToolOf(Weather));
        options.Tools.Add(ToolOf(Forecast));

        var completion = (await chat.CompleteChatAsync([new UserChatMessage("Weather?")], options)).Value;
        Assert.NotEmpty(completion.ToolCalls);
        Assert.Equal(completion.FinishReason == ChatFinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.ToolCalls, completion.FinishReason);
        foreach (var call in completion.ToolCalls)
        {
            using var arguments = JsonDocument.Parse(call.FunctionArguments);
            string unit = arguments.RootElement.GetProperty("unit").GetString()!;
            if (call.FunctionName == "get_forecast")
                Assert.Equal("K", unit);
            else
                Assert.Equal("get_weather", call.FunctionName);
            if (call.FunctionName == "get_weather")
                Assert.Contains(unit, new[] { "celsius", "fahrenheit" });
        }

        Assert.Equal(completion.ToolCalls.Select(c => c.Id).Distinct().Count(), completion.ToolCalls.Count);
    }

    [Fact]
    public async Task ChatCompletions_RequiredWithoutParallelCalls_ExactlyOneCall()
    {
        var body = Request(new JsonObject { ["tools"] = Tools(Weather, Forecast), ["tool_choice"] = "required", ["parallel_tool_calls"] = false });
        var choice = await Complete(body);
        Assert.Equal("tool_calls", (string?)choice["finish_reason"]);
        Assert.Single(choice["message"]!["tool_calls"]!.AsArray());
        Assert.Null(choice["message"]!["content"]);

        var (streamed, finish, _) = await Stream(body);
        Assert.Equal("tool_calls", finish);
        Assert.Equal(choice["message"]!["tool_calls"]![0]!["function"]!.ToJsonString(), streamed["tool_calls"]![0]!["function"]!.ToJsonString());
    }

    [Theory]
    [InlineData("""{"tools": [], "tool_choice": "required"}""", "tools")]
    [InlineData("""{"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}""", "tools")]
    [InlineData("""{"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "launch"}}}""", "tool_choice.function.name")]
    [InlineData("""{"tools": [TOOL], "tool_choice": {"type": "function"}}""", "tool_choice.function.name")]
    [InlineData("""{"tools": [TOOL], "tool_choice": "sometimes"}""", "tool_choice")]
    [InlineData("""{"tools": [TOOL], "tool_choice": "required", "response_format": {"type": "json_object"}}""", "tool_choice")]
    [InlineData("""{"tools": [{"type": "function", "function": {"description": "no name"}}]}""", "tools[0].function.name")]
    [InlineData("""{"tools": [{"type": "retrieval"}]}""", "tools[0].type")]
    [InlineData("""{"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}""", "tools[0].function.parameters")]
    [InlineData("""{"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "patternProperties": {}}}}], "tool_choice": "required"}""", "tools")]
    [InlineData("""{"tools": [TOOL], "parallel_tool_calls": "yes"}""", "parallel_tool_calls")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}""",
        "messages[1].tool_calls[0].function.arguments")]
    public async Task ChatCompletions_BadToolRequest_400NamingTheField(string extra, string field)
    {
        var body = Request(JsonNode.Parse(extra.Replace("TOOL", Weather, StringComparison.Ordinal))!.AsObject());
        var (status, answer) = await HttpJson.PostRawAsync(_server.Http, "/v1/chat/completions", body.ToJsonString());
        Assert.True(status == 400, answer.ToJsonString());
        Assert.Equal(field, (string?)answer["error"]!["param"]);
    }

    [Theory]
    [InlineData("--tool-call-parser", "jamba", "hermes")]
    [InlineData("--reasoning-parser", "granite", "deepseek_r1")]
    public async Task Start_UnknownParser_FailsListingTheKnownOnes(string parserSwitch, string unknown, string known)
    {
        var ex = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() =>
            ServerProcess.StartAsync("--model", Path.Combine(_root, "tools"), parserSwitch, unknown, "--adapter-registry", Path.Combine(_root, "other.json")));
        Assert.Contains($"not '{unknown}'", ex.Message, StringComparison.Ordinal);
        Assert.Contains(known, ex.Message, StringComparison.Ordinal);
    }
}
