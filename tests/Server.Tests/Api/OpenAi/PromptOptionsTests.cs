using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// How a request's prompt options reach the prompt, through a real server whose tokenizer adds a BOS and whose chat
/// template shows the tools and <c>reasoning_effort</c> it is given: vLLM's <c>add_special_tokens</c> (completions add
/// the BOS unless asked not to, gRPC alike; chat leaves it to the template unless asked), OpenAI's <c>tool_choice</c>
/// (<c>none</c> keeps the tools from the template, as vLLM), <c>reasoning_effort</c> (a template variable) and vLLM's
/// <c>continue_final_message</c> (the prompt ends inside the last message, as transformers cuts it).
/// </summary>
public sealed class PromptOptionsTests : IAsyncLifetime
{
    private const int Bos = 50256;
    private const string Template =
        "{% if tools %}TOOLS:{% for t in tools %}{{ t['function']['name'] + ';' }}{% endfor %}{{ '\\n' }}{% endif %}"
        + "{% if documents %}DOCS:{% for d in documents %}{{ d['title'] + '=' + d['text'] + ';' }}{% endfor %}{{ '\\n' }}{% endif %}"
        + "{% if reasoning_effort is defined %}{{ 'EFFORT:' + reasoning_effort + '\\n' }}{% endif %}"
        + "{% for m in messages %}{{ m['role'] + ':' + m['content'] + '\\n' }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

    private readonly string _root = TestDirectories.Path("prompt-options");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 43 });
        string configPath = Path.Combine(model, "tokenizer_config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["add_bos_token"] = true;
        config["chat_template"] = Template;
        File.WriteAllText(configPath, config.ToJsonString());
        _server = await ServerProcess.StartAsync("--model", model, "--dtype", "float32", "--cache-dir", Path.Combine(_root, "cache"), "--tool-call-parser", "hermes");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<int[]> PromptIds(string path, object extra)
    {
        var body = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(extra))!.AsObject();
        body["model"] = (string)JsonNode.Parse(await _server.Http.GetStringAsync("/v1/models"))!["data"]![0]!["id"]!;
        body["max_tokens"] = 1;
        body["return_token_ids"] = true;
        if (path.Contains("chat", StringComparison.Ordinal))
            body["messages"] ??= new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hello there" });
        else
            body["prompt"] = "hello there";
        var (status, answer) = await HttpJson.PostRawAsync(_server.Http, path, body.ToJsonString());
        Assert.True(status == 200, answer.ToJsonString());
        return answer["prompt_token_ids"]!.AsArray().Select(t => (int)t!).ToArray();
    }

    [Fact]
    public async Task Completions_AddSpecialTokens_BosOnlyWhenAsked()
    {
        int[] plain = await PromptIds("/v1/completions", new { });
        Assert.Equal(Bos, plain[0]);
        int[] without = await PromptIds("/v1/completions", new { add_special_tokens = false });
        Assert.Equal(plain[1..], without);

        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(_server.Address);
        var client = new Serving.V1.Generation.GenerationClient(channel);
        var request = new Serving.V1.GenerateRequest { Prompt = "hello there", MaxTokens = 1 };
        request.Model = (string)JsonNode.Parse(await _server.Http.GetStringAsync("/v1/models"))!["data"]![0]!["id"]!;
        Assert.Equal(plain.Length, (await client.GenerateAsync(request)).Usage.PromptTokens);
        request.AddSpecialTokens = false;
        Assert.Equal(without.Length, (await client.GenerateAsync(request)).Usage.PromptTokens);
    }

    [Fact]
    public async Task ChatCompletions_AddSpecialTokens_BosOnlyWhenAsked()
    {
        int[] plain = await PromptIds("/v1/chat/completions", new { });
        Assert.NotEqual(Bos, plain[0]);                                              // the template writes no BOS
        int[] with = await PromptIds("/v1/chat/completions", new { add_special_tokens = true });
        Assert.Equal([Bos, .. plain], with);
    }

    private async Task<string> ChatPrompt(object extra)
    {
        int[] ids = await PromptIds("/v1/chat/completions", extra);
        var (status, body) = await HttpJson.PostAsync(_server.Http, "/detokenize", new { model = await ModelId(), tokens = ids });
        Assert.Equal(200, status);
        return (string)body["prompt"]!;
    }

    private async Task<string> ModelId() => (string)JsonNode.Parse(await _server.Http.GetStringAsync("/v1/models"))!["data"]![0]!["id"]!;

    private static readonly object[] Tools =
        [new { type = "function", function = new { name = "get_weather", parameters = new { type = "object" } } }];

    [Fact]
    public async Task ChatCompletions_ToolChoice_NoneKeepsTheToolsFromTheTemplate()
    {
        Assert.StartsWith("TOOLS:get_weather;\nuser:hello there\n", await ChatPrompt(new { tools = Tools }), StringComparison.Ordinal);
        Assert.StartsWith("TOOLS:get_weather;", await ChatPrompt(new { tools = Tools, tool_choice = "auto" }), StringComparison.Ordinal);
        Assert.StartsWith("user:hello there", await ChatPrompt(new { tools = Tools, tool_choice = "none" }), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ChatCompletions_Documents_ReachTheTemplate()
    {
        var documents = new[] { new { title = "a", text = "first" }, new { title = "b", text = "second" } };
        Assert.StartsWith("DOCS:a=first;b=second;\nuser:", await ChatPrompt(new { documents }), StringComparison.Ordinal);
        var (status, body) = await HttpJson.PostAsync(_server.Http, "/tokenize", new { model = await ModelId(), messages = new[] { new { role = "user", content = "x" } }, documents });
        Assert.Equal(200, status);
        var (_, without) = await HttpJson.PostAsync(_server.Http, "/tokenize", new { model = await ModelId(), messages = new[] { new { role = "user", content = "x" } } });
        Assert.True((int)body["count"]! > (int)without["count"]!);

        var (bad, error) = await HttpJson.PostAsync(_server.Http, "/v1/chat/completions",
            new { model = await ModelId(), messages = new[] { new { role = "user", content = "x" } }, documents = new[] { "just text" } });
        Assert.Equal(400, bad);
        Assert.Equal("documents", (string?)error["error"]!["param"]);
    }

    [Fact]
    public async Task Responses_ReasoningEffort_TheChatTemplatesReasoningEffort()
    {
        async Task<int> InputTokens(object? reasoning)
        {
            var body = new JsonObject { ["model"] = await ModelId(), ["input"] = "hello there", ["max_output_tokens"] = 1, ["reasoning"] = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(reasoning)) };
            var (status, answer) = await HttpJson.PostRawAsync(_server.Http, "/v1/responses", body.ToJsonString());
            Assert.True(status == 200, answer.ToJsonString());
            return (int)answer["usage"]!["input_tokens"]!;
        }

        int chatLow = (await PromptIds("/v1/chat/completions", new { reasoning_effort = "low" })).Length;

        Assert.Equal(chatLow, await InputTokens(new { effort = "low" }));
        Assert.Equal((await PromptIds("/v1/chat/completions", new { })).Length, await InputTokens(null));
        Assert.NotEqual(chatLow, await InputTokens(null));
    }

    [Fact]
    public async Task ChatCompletions_ReasoningEffort_ATemplateVariableUnlessTheKwargsSetIt()
    {
        Assert.StartsWith("EFFORT:low\nuser:", await ChatPrompt(new { reasoning_effort = "low" }), StringComparison.Ordinal);
        Assert.StartsWith("EFFORT:high\n", await ChatPrompt(new { reasoning_effort = "low", chat_template_kwargs = new { reasoning_effort = "high" } }),
            StringComparison.Ordinal);
        Assert.StartsWith("user:", await ChatPrompt(new { }), StringComparison.Ordinal);
    }

    private static object[] Conversation(string final) =>
        [new { role = "user", content = "hello there" }, new { role = "assistant", content = final }];

    [Fact]
    public async Task ChatCompletions_ContinueFinalMessage_PromptEndsInsideIt()
    {
        Assert.EndsWith("assistant:The answer is\n", await ChatPrompt(new { messages = Conversation("The answer is"), add_generation_prompt = false }),
            StringComparison.Ordinal);
        Assert.EndsWith("\nassistant:The answer is", await ChatPrompt(new { messages = Conversation("The answer is"), continue_final_message = true }),
            StringComparison.Ordinal);
        Assert.EndsWith("assistant:The answer is ", await ChatPrompt(new { messages = Conversation("The answer is "), continue_final_message = true }),
            StringComparison.Ordinal);                                            // the template kept the trailing space, so the cut does
        Assert.EndsWith("assistant:\n", await ChatPrompt(new { messages = Conversation(""), continue_final_message = true }),
            StringComparison.Ordinal);                                            // an empty message is found at the end, as Python's rindex("")
        var (status, body) = await HttpJson.PostAsync(_server.Http, "/v1/chat/completions",
            new { model = await ModelId(), messages = Conversation("x"), continue_final_message = true, add_generation_prompt = true });
        Assert.Equal((400, "continue_final_message"), (status, (string?)body["error"]!["param"]));
    }

    [Fact]
    public async Task ChatCompletions_EchoWithAFinalAssistantMessage_AnswerStartsWithIt()
    {
        string model = await ModelId();
        object Body(bool echo, object[] messages, bool stream = false) =>
            new { model, messages, continue_final_message = true, add_generation_prompt = false, max_tokens = 5, temperature = 0, ignore_eos = true, echo, stream };

        var (_, plain) = await HttpJson.PostAsync(_server.Http, "/v1/chat/completions", Body(false, Conversation("The answer is")));
        var (status, echoed) = await HttpJson.PostAsync(_server.Http, "/v1/chat/completions", Body(true, Conversation("The answer is")));
        var chunks = await HttpJson.StreamAsync(_server.Http, "/v1/chat/completions", Body(true, Conversation("The answer is"), stream: true));
        string streamed = string.Concat(chunks.Where(c => c.StartsWith('{')).Select(c => (string?)JsonNode.Parse(c)!["choices"]!.AsArray().FirstOrDefault()?["delta"]?["content"]));
        var (_, userLast) = await HttpJson.PostAsync(_server.Http, "/v1/chat/completions",
            new { model, messages = new[] { new { role = "user", content = "hello there" } }, max_tokens = 5, temperature = 0, ignore_eos = true, echo = true });
        var (_, userLastPlain) = await HttpJson.PostAsync(_server.Http, "/v1/chat/completions",
            new { model, messages = new[] { new { role = "user", content = "hello there" } }, max_tokens = 5, temperature = 0, ignore_eos = true });

        string Content(JsonNode answer) => (string)answer["choices"]![0]!["message"]!["content"]!;
        Assert.Equal(200, status);
        Assert.Equal("The answer is" + Content(plain), Content(echoed));
        Assert.Equal(Content(echoed), streamed);
        Assert.Equal(Content(userLastPlain), Content(userLast));                  // only an assistant's message is echoed
    }
}
