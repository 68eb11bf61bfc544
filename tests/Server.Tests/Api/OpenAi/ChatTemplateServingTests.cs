using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Engine.Tokenization;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// The model's own chat template through the real server: a <c>chat_template.jinja</c> beside the tokenizer wins over
/// tokenizer_config.json; tools, <c>add_generation_prompt</c> and <c>chat_template_kwargs</c> reach it; its
/// <c>raise_exception</c> is a 400 carrying its message; a template the engine cannot render stops start-up naming it.
/// </summary>
public sealed class ChatTemplateServingTests : IAsyncLifetime
{
    private const string Template = """
        {%- if messages[0].role != 'user' and messages[0].role != 'system' %}{{ raise_exception('Conversations must start with a user or system message') }}{% endif -%}
        {%- if tools %}<tools>{{ tools | map(attribute='function') | map(attribute='name') | join(',') }}</tools>{% endif -%}
        {%- for m in messages %}<|im_start|>{{ m.role }}
        {{ m.content if m.content is not none else '' }}{% if m.tool_calls is defined %}{{ m.tool_calls | tojson }}{% endif %}<|im_end|>
        {% endfor -%}
        {%- if add_generation_prompt %}<|im_start|>assistant
        {% if enable_thinking is defined and not enable_thinking %}<think>

        </think>

        {% endif %}{% endif %}
        """;

    private readonly string _root = TestDirectories.Path("chat-template");
    private ServerProcess _server = null!;
    private HfTokenizer _tokenizer = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "templated");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 12 });
        File.WriteAllText(Path.Combine(model, ChatTemplate.FileName), Template);
        _tokenizer = HfTokenizer.Load(model);
        _server = await ServerProcess.StartAsync("--model", model, "--dtype", "float32", "--adapter-registry", Path.Combine(_root, "registry.json"),
            "--tool-call-parser", "hermes");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<(int Status, JsonNode Body)> Chat(object body) => await HttpJson.PostAsync(_server.Http, "/v1/chat/completions", body);

    private List<int> PromptOf(JsonNode body) => body["prompt_token_ids"]!.AsArray().Select(x => (int)x!).ToList();

    /// <summary>The call's arguments reach the template as the object their JSON text holds, as vLLM passes them.</summary>
    [Fact]
    public async Task Chat_ToolsKwargsAndToolCalls_RenderedByTheModelsOwnTemplate()
    {
        var (status, body) = await Chat(new
        {
            model = "templated",
            messages = new object[]
            {
                new { role = "user", content = "Weather?" },
                new { role = "assistant", content = (string?)null, tool_calls = new[] { new { type = "function", function = new { name = "get_weather", arguments = "{\"city\": \"Oslo\"}" } } } },
                new { role = "tool", content = "-3 C" },
            },
            tools = new[] { new { type = "function", function = new { name = "get_weather", parameters = new { type = "object" } } } },
            chat_template_kwargs = new { enable_thinking = false },
            max_tokens = 1, return_token_ids = true,
        });

        Assert.Equal(200, status);
        string expected = "<tools>get_weather</tools><|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n"
            + "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}}]<|im_end|>\n"
            + "<|im_start|>tool\n-3 C<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
        Assert.Equal(_tokenizer.Encode(expected, addSpecialTokens: false), PromptOf(body));
    }

    [Fact]
    public async Task Chat_AddGenerationPromptFalse_NoAssistantCue()
    {
        var (status, body) = await Chat(new { model = "templated", messages = new[] { new { role = "user", content = "Hi" } }, add_generation_prompt = false,
            max_tokens = 1, return_token_ids = true });
        Assert.Equal(200, status);
        Assert.Equal(_tokenizer.Encode("<|im_start|>user\nHi<|im_end|>\n", addSpecialTokens: false), PromptOf(body));
    }

    [Fact]
    public async Task Chat_TemplateRaises_400WithItsMessage()
    {
        var (status, body) = await Chat(new { model = "templated", messages = new[] { new { role = "assistant", content = "I start" } }, max_tokens = 1 });
        Assert.Equal(400, status);
        Assert.Equal("Conversations must start with a user or system message", (string?)body["error"]!["message"]);
        Assert.Equal("messages", (string?)body["error"]!["param"]);
    }

    [Fact]
    public async Task Chat_ReservedTemplateArgument_400NamingIt()
    {
        var (status, body) = await Chat(new { model = "templated", messages = new[] { new { role = "user", content = "x" } },
            chat_template_kwargs = new { add_generation_prompt = false }, max_tokens = 1 });
        Assert.Equal(400, status);
        Assert.Contains("add_generation_prompt", (string?)body["error"]!["message"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tokenize_PromptAndMessages_TheIdsTheServerRuns()
    {
        var (promptStatus, prompt) = await HttpJson.PostAsync(_server.Http, "/tokenize", new { model = "templated", prompt = "Hello 𝟏𝟐𝟑 world", return_token_strs = true });
        var (chatStatus, chat) = await HttpJson.PostAsync(_server.Http, "/tokenize", new { model = "templated", messages = new[] { new { role = "user", content = "Hi" } } });
        var (_, generated) = await Chat(new { model = "templated", messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 1, return_token_ids = true });

        Assert.Equal(200, promptStatus);
        var ids = prompt["tokens"]!.AsArray().Select(x => (int)x!).ToList();
        Assert.Equal(_tokenizer.Encode("Hello 𝟏𝟐𝟑 world"), ids);
        Assert.Equal(ids.Count, (int)prompt["count"]!);
        Assert.Equal(ids.Select(i => _tokenizer.IdToToken(i)), prompt["token_strs"]!.AsArray().Select(x => (string?)x));
        Assert.Equal(200, chatStatus);
        Assert.Equal(PromptOf(generated), chat["tokens"]!.AsArray().Select(x => (int)x!));
    }

    /// <summary>A message's text parts reach the template joined by newlines, as vLLM flattens them; a part without text is skipped.</summary>
    [Fact]
    public async Task Tokenize_ContentParts_JoinedByNewlinesAsVllmDoes()
    {
        var parts = new JsonArray(
            new JsonObject { ["type"] = "text", ["text"] = "first line" },
            new JsonObject { ["type"] = "input_text", ["text"] = "second" },
            new JsonObject { ["type"] = "text", ["text"] = null });
        var (_, split) = await HttpJson.PostAsync(_server.Http, "/tokenize", new JsonObject
        {
            ["model"] = "templated", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = parts }),
        });
        var (_, joined) = await HttpJson.PostAsync(_server.Http, "/tokenize", new { model = "templated", messages = new[] { new { role = "user", content = "first line\nsecond" } } });
        Assert.Equal(joined["tokens"]!.ToJsonString(), split["tokens"]!.ToJsonString());

        var (status, error) = await HttpJson.PostAsync(_server.Http, "/tokenize", new JsonObject
        {
            ["model"] = "templated",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "image_url", ["image_url"] = "x" }) }),
        });
        HttpJson.AssertBadRequest(status, error, "messages", "got 'image_url'");
    }

    [Fact]
    public async Task Detokenize_Ids_TextBack_UnknownId400()
    {
        int[] ids = _tokenizer.Encode("round trip ✓", addSpecialTokens: false);
        var (status, body) = await HttpJson.PostAsync(_server.Http, "/detokenize", new { model = "templated", tokens = ids });
        var (badStatus, bad) = await HttpJson.PostAsync(_server.Http, "/detokenize", new { model = "templated", tokens = new[] { 1, 10_000_000 } });
        var (missingStatus, _) = await HttpJson.PostAsync(_server.Http, "/tokenize", new { model = "no-such-model", prompt = "x" });

        Assert.Equal(200, status);
        Assert.Equal("round trip ✓", (string?)body["prompt"]);
        Assert.Equal(400, badStatus);
        Assert.Contains("10000000", (string?)bad["error"]!["message"], StringComparison.Ordinal);
        Assert.Equal(404, missingStatus);
    }

    [Fact]
    public async Task Grpc_TokenizeAndDetokenize_SameIdsAsRest()
    {
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(_server.Address);
        var client = new V1.Generation.GenerationClient(channel);
        var tokenized = await client.TokenizeAsync(new V1.TokenizeRequest { Model = "templated", Prompt = "Hello 𝟏𝟐𝟑 world", ReturnTokenStrs = true });
        var detokenized = await client.DetokenizeAsync(new V1.DetokenizeRequest { Model = "templated", Tokens = { tokenized.Tokens } });
        var bad = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(async () =>
            await client.DetokenizeAsync(new V1.DetokenizeRequest { Model = "templated", Tokens = { 1, -5 } }));

        Assert.Equal(_tokenizer.Encode("Hello 𝟏𝟐𝟑 world"), tokenized.Tokens);
        Assert.Equal(tokenized.Tokens.Count, tokenized.TokenStrs.Count);
        Assert.Equal("Hello 𝟏𝟐𝟑 world", detokenized.Prompt);
        Assert.Equal(global::Grpc.Core.StatusCode.InvalidArgument, bad.StatusCode);
    }

    [Fact]
    public async Task Start_UnsupportedConstructInTheTemplate_StopsNamingTheFileAndConstruct()
    {
        string broken = Path.Combine(_root, "broken");
        SyntheticModelWriter.Write(broken, new SyntheticModelSpec { Seed = 13 });
        File.WriteAllText(Path.Combine(broken, ChatTemplate.FileName), "{% include 'system.jinja' %}{{ messages }}");

        var ex = await Assert.ThrowsAnyAsync<Exception>(() => ServerProcess.StartAsync("--model", broken, "--dtype", "float32",
            "--adapter-registry", Path.Combine(_root, "broken-registry.json")));
        string message = ex.ToString();
        Assert.Contains(ChatTemplate.FileName, message, StringComparison.Ordinal);
        Assert.Contains("'include' is not supported", message, StringComparison.Ordinal);
    }
}
