using System.Text.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using Json.Schema;
using OpenAI;
using OpenAI.Chat;
using Serving.Server.Tests.Support;
using Serving.Tests.Shared;
using Serving.V1;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// Structured output at the edges: the catalogue of schemas and options the server refuses (400 naming the path, server
/// unaffected), gRPC's StructuredOutput, and the official OpenAI .NET client's structured-output API end to end.
/// </summary>
public sealed class StructuredOutputRequestTests(StructuredOutputServerFixture fixture) : IClassFixture<StructuredOutputServerFixture>, IDisposable
{
    private readonly GrpcChannel _channel = GrpcChannel.ForAddress(fixture.Server.Address);

    public static TheoryData<string, string, string> RefusedSchemas
    {
        get
        {
            var data = new TheoryData<string, string, string>();
            foreach (var (schema, path, problem) in ExtractionSchemas.Refused)
                data.Add(schema, path, problem);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(RefusedSchemas))]
    public async Task Chat_RefusedSchema_400NamingTheFullPathAndServerStillServes(string schema, string path, string problem)
    {
        string body = "{\"model\":\"" + fixture.Model + "\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":4,"
            + "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"r\",\"schema\":" + schema + "}}}";
        bool schemaIsJson = IsJson(schema);
        if (!schemaIsJson)          // not JSON at all: send it as vLLM's string form, which the server parses
            body = JsonSerializer.Serialize(new { model = fixture.Model, prompt = "x", max_tokens = 4, structured_outputs = new { json = schema } });
        var (status, error) = await HttpJson.PostRawAsync(fixture.Http, schemaIsJson ? "/v1/chat/completions" : "/v1/completions", body);
        Assert.Equal(400, status);
        string field = schemaIsJson ? "response_format.json_schema.schema" : "structured_outputs.json";
        string expected = field + path[1..];
        Assert.Equal(expected, (string?)error["error"]!["param"]);
        Assert.Contains(problem, (string?)error["error"]!["message"]);
        Assert.Contains(expected, (string?)error["error"]!["message"]);

        var (ok, _) = await HttpJson.PostAsync(fixture.Http, "/v1/completions", new { model = fixture.Model, prompt = "still here", max_tokens = 2 });
        Assert.Equal(200, ok);
    }

    [Theory]
    [InlineData("""{"response_format":{"type":"json_object"},"structured_outputs":{"regex":"a"}}""", "structured_outputs.regex", "give one output format")]
    [InlineData("""{"response_format":{"type":"xml"}}""", "response_format.type", "must be 'text', 'json_object', 'json_schema' or 'structural_tag'")]
    [InlineData("""{"response_format":{"type":"json_schema"}}""", "response_format.json_schema", "must be an object")]
    [InlineData("""{"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}""", "response_format.json_schema.schema", "is required")]
    [InlineData("""{"response_format":{"type":"json_schema","json_schema":{"name":"has space","schema":{}}}}""", "response_format.json_schema.name", "letters")]
    [InlineData("""{"structured_outputs":{"structural_tag":"{}"}}""", "structured_outputs.structural_tag.triggers", "non-empty strings")]
    [InlineData("""{"structured_outputs":{"structural_tag":7}}""", "structured_outputs.structural_tag", "must be an object")]
    [InlineData("""{"response_format":{"type":"structural_tag","triggers":["<f"],"structures":[{"begin":"<g>","schema":{},"end":"</g>"}]}}""",
        "response_format.structures[0].begin", "start with one of the triggers")]
    [InlineData("""{"structured_outputs":{"grammar":""}}""", "structured_outputs.grammar", "non-empty")]
    [InlineData("""{"guided_grammar":"root ::= [z-a]"}""", "guided_grammar[10]", "reversed")]
    [InlineData("""{"structured_outputs":{"regex":"a","choice":["b"]}}""", "structured_outputs", "exactly one")]
    [InlineData("""{"structured_outputs":{}}""", "structured_outputs", "must name one")]
    [InlineData("""{"structured_outputs":{"regexp":"a"}}""", "structured_outputs.regexp", "not a structured_outputs option")]
    [InlineData("""{"structured_outputs":{"regex":"(a)\\1"}}""", "structured_outputs.regex[3]", "backreferences")]
    [InlineData("""{"structured_outputs":{"regex":42}}""", "structured_outputs.regex", "must be a string")]
    [InlineData("""{"structured_outputs":{"choice":[]}}""", "structured_outputs.choice", "1 to 1000")]
    [InlineData("""{"structured_outputs":{"choice":["a",""]}}""", "structured_outputs.choice[1]", "must not be empty")]
    [InlineData("""{"structured_outputs":{"choice":"a"}}""", "structured_outputs.choice", "list of strings")]
    [InlineData("""{"structured_outputs":{"json":{"type":"object"},"whitespace_pattern":"[ a]"}}""", "structured_outputs.whitespace_pattern", "JSON whitespace")]
    [InlineData("""{"structured_outputs":{"regex":"a","whitespace_pattern":" "}}""", "structured_outputs.whitespace_pattern", "JSON output only")]
    [InlineData("""{"guided_whitespace_pattern":" "}""", "guided_whitespace_pattern", "needs a JSON output format")]
    [InlineData("""{"structured_outputs":{"json":{},"disable_any_whitespace":false,"whitespace_pattern":" "}}""", "structured_outputs.disable_any_whitespace", "beside")]
    [InlineData("""{"guided_regex":"[a-"}""", "guided_regex[3]", "missing ']'")]
    public async Task Completions_BadStructuredOutputOption_400NamingTheField(string options, string param, string problem)
    {
        var body = JsonNode.Parse(options)!.AsObject();
        body["model"] = fixture.Model;
        body["prompt"] = "x";
        var (status, error) = await HttpJson.PostRawAsync(fixture.Http, "/v1/completions", body.ToJsonString());
        Assert.Equal(400, status);
        Assert.Equal(param, (string?)error["error"]!["param"]);
        Assert.Contains(problem, (string?)error["error"]!["message"]);
    }

    [Fact]
    public async Task Grpc_StructuredOutputJsonSchemaAndChoice_ValidAndStreamedSame()
    {
        var client = new V1.Generation.GenerationClient(_channel);
        string schema = ExtractionSchemas.Valid.Single(s => s.Name == "triage").Schema;
        var request = new GenerateRequest
        {
            Model = StructuredOutputServerFixture.Adapters[1], Prompt = "Triage:", MaxTokens = 300, Temperature = 0,
            StructuredOutput = new StructuredOutput { JsonSchema = schema },
        };
        var unary = await client.GenerateAsync(request);
        using var document = JsonDocument.Parse(unary.Text);
        Assert.True(JsonSchema.FromText(schema).Evaluate(document.RootElement).IsValid, unary.Text);
        Assert.Equal("stop", unary.FinishReason);
        Assert.False(unary.OutputIncomplete);

        using var call = client.GenerateStream(request);
        var streamed = new System.Text.StringBuilder();
        GenerateStreamResponse? last = null;
        await foreach (var m in call.ResponseStream.ReadAllAsync())
        {
            streamed.Append(m.Text);
            last = m;
        }

        Assert.Equal(unary.Text, streamed.ToString());

        var choice = new StructuredOutput { Choice = new ChoiceList() };
        choice.Choice.Values.Add(["red", "green"]);
        var picked = await client.GenerateAsync(new GenerateRequest { Model = fixture.Model, Prompt = "Colour:", MaxTokens = 2, Temperature = 0, StructuredOutput = choice });
        Assert.Contains(picked.Text, new[] { "red", "green", "re", "gr" });
        Assert.Equal(picked.FinishReason == "length", picked.OutputIncomplete);
    }

    [Fact]
    public async Task Grpc_BadRegex_InvalidArgumentNamingThePosition()
    {
        var client = new V1.Generation.GenerationClient(_channel);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await client.GenerateAsync(new GenerateRequest
        {
            Model = fixture.Model, Prompt = "x", StructuredOutput = new StructuredOutput { Regex = "a(?=b)" },
        }));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Contains("structured_output.regex[1]", ex.Status.Detail);
    }

    [Fact]
    public async Task OfficialClient_JsonSchemaResponseFormat_ParsesAndValidates()
    {
        var client = new OpenAIClient(new System.ClientModel.ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(fixture.Server.Address, "/v1") });
        string schema = ExtractionSchemas.Valid.Single(s => s.Name == "clinical_record").Schema;
        var options = new ChatCompletionOptions
        {
            MaxOutputTokenCount = 900, Temperature = 0,
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("clinical_record", BinaryData.FromString(schema), jsonSchemaIsStrict: true),
        };
        var completion = (await client.GetChatClient(StructuredOutputServerFixture.Adapters[0])
            .CompleteChatAsync([new UserChatMessage("Patient seen today for hypertension; started lisinopril 10 mg once daily.")], options)).Value;

        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        using var document = JsonDocument.Parse(completion.Content[0].Text);
        var result = JsonSchema.FromText(schema).Evaluate(document.RootElement, new EvaluationOptions { RequireFormatValidation = true });
        Assert.True(result.IsValid, completion.Content[0].Text);

        var json = (await client.GetChatClient(fixture.Model).CompleteChatAsync([new UserChatMessage("Any JSON object")],
            new ChatCompletionOptions { MaxOutputTokenCount = 200, Temperature = 0, ResponseFormat = ChatResponseFormat.CreateJsonObjectFormat() })).Value;
        Assert.True(json.FinishReason == ChatFinishReason.Length || JsonNode.Parse(json.Content[0].Text) is JsonObject);
        Assert.StartsWith("{", json.Content[0].Text);
    }

    private static bool IsJson(string text)
    {
        try
        {
            JsonDocument.Parse(text).Dispose();
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    public void Dispose() => _channel.Dispose();
}
