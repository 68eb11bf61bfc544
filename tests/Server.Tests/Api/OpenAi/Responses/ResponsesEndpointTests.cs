#pragma warning disable OPENAI001                      // the official library marks its Responses client experimental
using System.ClientModel;
using System.Text.Json.Nodes;
using OpenAI.Chat;
using OpenAI.Responses;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi.Responses;

/// <summary>
/// <c>/v1/responses</c> through the real server: the official OpenAI library's Responses client, whole and streamed, gets
/// what the chat endpoint gives for the same conversation; forced function calls come back as <c>function_call</c> items
/// and go back in as input; a JSON schema format holds; what the server cannot do is a 400 naming the Responses field.
/// </summary>
public sealed class ResponsesEndpointTests(StructuredOutputServerFixture fixture) : IClassFixture<StructuredOutputServerFixture>
{
    private const string Weather = """{"type": "object", "properties": {"city": {"enum": ["Paris", "Oslo"]}, "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city", "days"], "additionalProperties": false}""";

    private ResponsesClient Responses => new(new ApiKeyCredential("unused-in-open-mode"), new ResponsesClientOptions { Endpoint = new Uri(fixture.Server.Address, "/v1") });

    private ChatClient Chat(string model) => new(model, new ApiKeyCredential("unused-in-open-mode"), new OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.Server.Address, "/v1") });

    [Fact]
    public async Task CreateResponse_OfficialClient_SameTextAsChatAndIncompleteAtTheLimit()
    {
        string model = StructuredOutputServerFixture.Adapters[0];
        var chat = (await Chat(model).CompleteChatAsync([new SystemChatMessage("Answer briefly."), new UserChatMessage("Name a city.")],
            new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0 })).Value;

        var response = (await Responses.CreateResponseAsync(new CreateResponseOptions(model, [ResponseItem.CreateUserMessageItem("Name a city.")])
        {
            Instructions = "Answer briefly.", MaxOutputTokenCount = 12, Temperature = 0,
        })).Value;

        Assert.Equal(chat.Content[0].Text, response.GetOutputText());
        Assert.Equal(ResponseStatus.Incomplete, response.Status);
        Assert.Equal(12, response.Usage.OutputTokenCount);
        Assert.Equal(chat.Usage.InputTokenCount, response.Usage.InputTokenCount);
        Assert.Equal(model, response.Model);
        Assert.StartsWith("resp_", response.Id);
        Assert.IsAssignableFrom<MessageResponseItem>(Assert.Single(response.OutputItems));
    }

    [Fact]
    public async Task CreateResponseStreaming_OfficialClient_DeltasAddUpToTheWholeResponse()
    {
        var options = new CreateResponseOptions("base", [ResponseItem.CreateUserMessageItem("Stream a sentence.")]) { MaxOutputTokenCount = 10, Temperature = 0 };
        string whole = (await Responses.CreateResponseAsync(options)).Value.GetOutputText();

        var text = new System.Text.StringBuilder();
        ResponseResult? last = null;
        int sequence = -1;
        var updates = await Responses.CreateResponseStreamingAsync(new CreateResponseOptions("base", [ResponseItem.CreateUserMessageItem("Stream a sentence.")])
            { MaxOutputTokenCount = 10, Temperature = 0, StreamingEnabled = true });
        await foreach (var update in updates)
        {
            Assert.Equal(sequence + 1, update.SequenceNumber);
            sequence = update.SequenceNumber;
            if (update is StreamingResponseOutputTextDeltaUpdate delta)
                text.Append(delta.Delta);
            if (update is StreamingResponseIncompleteUpdate incomplete)
                last = incomplete.Response;
        }

        Assert.Equal(whole, text.ToString());
        Assert.NotNull(last);
        Assert.Equal(whole, last!.GetOutputText());
        Assert.Equal(10, last.Usage.OutputTokenCount);
    }

    [Fact]
    public async Task Responses_ForcedFunctionCall_FunctionCallItemAndItsOutputGoBackIn()
    {
        var tools = new JsonArray(new JsonObject { ["type"] = "function", ["name"] = "get_weather", ["description"] = "Weather", ["parameters"] = JsonNode.Parse(Weather) });
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "/v1/responses", new JsonObject
        {
            ["model"] = "base", ["input"] = "Weather in Paris?", ["tools"] = tools, ["tool_choice"] = "required", ["max_output_tokens"] = 200, ["temperature"] = 0,
        });

        Assert.True(status == 200, body.ToJsonString());
        var call = body["output"]!.AsArray().First(i => (string)i!["type"]! == "function_call")!;     // required: one or more
        Assert.Equal("get_weather", (string)call["name"]!);
        var arguments = JsonNode.Parse((string)call["arguments"]!)!;
        Assert.Contains((string)arguments["city"]!, new[] { "Paris", "Oslo" });
        Assert.StartsWith("fc_", (string)call["id"]!);

        var (again, answer) = await HttpJson.PostAsync(fixture.Http, "/v1/responses", new JsonObject
        {
            ["model"] = "base", ["max_output_tokens"] = 5, ["tools"] = tools.DeepClone(),
            ["input"] = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = "Weather in Paris?" },
                new JsonObject { ["type"] = "function_call", ["call_id"] = call["call_id"]!.DeepClone(), ["name"] = "get_weather", ["arguments"] = call["arguments"]!.DeepClone() },
                new JsonObject { ["type"] = "function_call_output", ["call_id"] = call["call_id"]!.DeepClone(), ["output"] = "{\"temperature_c\": 21}" }),
            ["tool_choice"] = "none",
        });
        Assert.True(again == 200, answer.ToJsonString());
        Assert.Equal("message", (string)answer["output"]![0]!["type"]!);
    }

    [Fact]
    public async Task ResponsesStreaming_ForcedFunctionCall_TypedEventsInOrderAndTheFinalResponseHoldsTheCall()
    {
        var request = new JsonObject
        {
            ["model"] = "base", ["input"] = "Weather in Oslo?", ["stream"] = true, ["max_output_tokens"] = 200, ["temperature"] = 0, ["parallel_tool_calls"] = false,
            ["tools"] = new JsonArray(new JsonObject { ["type"] = "function", ["name"] = "get_weather", ["parameters"] = JsonNode.Parse(Weather) }),
            ["tool_choice"] = new JsonObject { ["type"] = "function", ["name"] = "get_weather" },
        };
        using var response = await fixture.Http.PostAsync("/v1/responses", new StringContent(request.ToJsonString(), System.Text.Encoding.UTF8, "application/json"));
        string stream = await response.Content.ReadAsStringAsync();
        var events = stream.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e =>
        {
            var lines = e.Split('\n');
            string name = lines.Single(l => l.StartsWith("event: ", StringComparison.Ordinal))["event: ".Length..];
            var data = JsonNode.Parse(lines.Single(l => l.StartsWith("data: ", StringComparison.Ordinal))["data: ".Length..])!;
            Assert.Equal(name, (string)data["type"]!);
            return data;
        }).ToList();

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => (int)e["sequence_number"]!));
        var types = events.Select(e => (string)e["type"]!).ToList();
        Assert.Equal(["response.created", "response.in_progress", "response.output_item.added"], types[..3]);
        Assert.Equal(["response.function_call_arguments.done", "response.output_item.done", "response.completed"], types[^3..]);
        Assert.All(types[3..^3], t => Assert.Equal("response.function_call_arguments.delta", t));
        string streamed = string.Concat(events.Where(e => (string)e["type"]! == "response.function_call_arguments.delta").Select(e => (string)e["delta"]!));
        var final = events[^1]["response"]!["output"]!.AsArray().Single()!;
        Assert.Equal("function_call", (string)final["type"]!);
        Assert.Equal(streamed, (string)final["arguments"]!);
        Assert.Equal((string)events[2]["item"]!["id"]!, (string)final["id"]!);
        Assert.Contains((string)JsonNode.Parse(streamed)!["city"]!, new[] { "Paris", "Oslo" });
    }

    [Fact]
    public async Task Responses_JsonSchemaFormat_OutputValidatesAndFormatEchoed()
    {
        var format = new JsonObject { ["type"] = "json_schema", ["name"] = "weather", ["schema"] = JsonNode.Parse(Weather), ["strict"] = true };
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "/v1/responses", new JsonObject
        {
            ["model"] = StructuredOutputServerFixture.Adapters[1], ["input"] = "Weather?", ["text"] = new JsonObject { ["format"] = format }, ["max_output_tokens"] = 200,
        });

        Assert.True(status == 200, body.ToJsonString());
        var output = JsonNode.Parse((string)body["output"]![0]!["content"]![0]!["text"]!)!;
        Assert.Contains((string)output["city"]!, new[] { "Paris", "Oslo" });
        Assert.InRange((int)output["days"]!, 1, 7);
        Assert.Equal("completed", (string)body["status"]!);
        Assert.Equal("weather", (string)body["text"]!["format"]!["name"]!);
    }

    [Theory]
    [InlineData("""{"model": "base", "input": "x", "previous_response_id": "resp_1"}""", "previous_response_id", "no stored response 'resp_1'")]
    [InlineData("""{"model": "base", "input": "x", "conversation": "conv_1"}""", "conversation", "not stored")]
    [InlineData("""{"model": "base", "input": "x", "previous_response_id": 7}""", "previous_response_id", "must be a string")]
    [InlineData("""{"model": "base", "input": "x", "frobnicate": 1}""", "frobnicate", "not supported")]
    [InlineData("""{"model": "base", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}""", "input[0].content[0].type", "input_image")]
    [InlineData("""{"model": "base", "input": "x", "tools": [{"type": "web_search"}]}""", "tools[0].type", "function tools only")]
    [InlineData("""{"model": "base", "input": [{"role": "robot", "content": "x"}]}""", "input[0].role", "robot")]
    [InlineData("""{"model": "base"}""", "input", "required")]
    [InlineData("""{"model": "base", "input": "x", "max_output_tokens": 100000}""", "max_output_tokens", "")]
    [InlineData("""{"model": "base", "input": "x", "text": {"format": {"type": "json_schema", "schema": {"type": "object", "not": {}}}}}""", "text.format.json_schema.schema.not", "not")]
    [InlineData("""{"model": "base", "input": "x", "truncation": "auto"}""", "truncation", "never cut")]
    [InlineData("""{"model": "base", "input": "x", "reasoning": {"effort": "extreme"}}""", "reasoning.effort", "minimal, low, medium, high")]
    [InlineData("""{"model": "base", "input": "x", "reasoning": {"summary": "auto"}}""", "reasoning.summary", "not supported")]
    public async Task Responses_Unsupported_400NamingTheResponsesField(string request, string param, string problem)
    {
        var (status, body) = await HttpJson.PostRawAsync(fixture.Http, "/v1/responses", request);

        Assert.True(status == 400, body.ToJsonString());
        Assert.Equal(param, (string?)body["error"]!["param"]);
        Assert.Contains(problem, (string)body["error"]!["message"]!);
    }
}
