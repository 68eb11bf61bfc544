using System.Text.Json.Nodes;
using Grpc.Net.Client;
using Serving.Server.Tests.Support;
using V1 = Serving.V1;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// vLLM's output fields through the real server (allowed_token_ids, skip_special_tokens, include_stop_str_in_output), on
/// REST and gRPC alike, and the fields this server does not implement: each a 400 naming it, never silently ignored.
/// </summary>
[Collection(nameof(CompletionsServer))]
public sealed class OutputFieldsTests(DemoServerFixture fixture)
{
    private const string Model = "serving-demo-tiny";
    private const string Prompt = "The quick brown fox jumps over";
    private const int EndOfText = 50256;                 // the demo tokenizer's <|endoftext|>: special, and one of its end tokens
    private HttpClient Http => fixture.Http;

    private async Task<(string Text, int[] Ids, string Finish)> Greedy(int maxTokens, object? extra = null, string path = "/v1/completions")
    {
        var body = new JsonObject { ["model"] = Model, ["max_tokens"] = maxTokens, ["temperature"] = 0, ["return_token_ids"] = true };
        if (path.Contains("chat", StringComparison.Ordinal))
            body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = Prompt });
        else
            body["prompt"] = Prompt;
        if (extra is not null)
            foreach (var (key, value) in JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(extra))!.AsObject())
                body[key] = value?.DeepClone();
        var (status, answer) = await HttpJson.PostRawAsync(Http, path, body.ToJsonString());
        Assert.True(status == 200, answer.ToJsonString());
        var choice = answer["choices"]![0]!;
        string text = (string?)choice["text"] ?? (string)choice["message"]!["content"]!;
        return (text, choice["token_ids"]!.AsArray().Select(t => (int)t!).ToArray(), (string)choice["finish_reason"]!);
    }

    [Fact]
    public async Task Completions_AllowedTokenIds_OnlyThoseGenerated()
    {
        var (plain, _, _) = await Greedy(8);
        int[] allowed = [995, 1212, 3290];
        var (_, ids, _) = await Greedy(8, new { allowed_token_ids = allowed });
        Assert.Equal(8, ids.Length);
        Assert.All(ids, id => Assert.Contains(id, allowed));
        var (_, sampled, _) = await Greedy(8, new { allowed_token_ids = allowed, temperature = 1.0, seed = 5 });
        Assert.All(sampled, id => Assert.Contains(id, allowed));
        Assert.NotEmpty(plain);
    }

    [Fact]
    public async Task Completions_SkipSpecialTokensFalse_ShowsGeneratedSpecialTokens()
    {
        var forced = new { logit_bias = new Dictionary<string, int> { [EndOfText.ToString(System.Globalization.CultureInfo.InvariantCulture)] = 100 }, ignore_eos = true };
        var (hidden, ids, _) = await Greedy(3, forced);
        Assert.Equal([EndOfText, EndOfText, EndOfText], ids);
        Assert.Equal("", hidden);
        var (shown, _, _) = await Greedy(3, new { forced.logit_bias, forced.ignore_eos, skip_special_tokens = false });
        Assert.Equal("<|endoftext|><|endoftext|><|endoftext|>", shown);
        var (chat, _, _) = await Greedy(2, new { forced.logit_bias, forced.ignore_eos, skip_special_tokens = false, spaces_between_special_tokens = false },
            "/v1/chat/completions");
        Assert.Equal("<|endoftext|><|endoftext|>", chat);
    }

    [Fact]
    public async Task Completions_IncludeStopStrInOutput_TextEndsWithTheStopString()
    {
        var (plain, _, _) = await Greedy(12);
        Assert.True(plain.Length >= 6, plain);
        string stop = plain.Substring(plain.Length / 2, 3);
        int at = plain.IndexOf(stop, StringComparison.Ordinal);
        var (cut, _, finish) = await Greedy(12, new { stop = new[] { stop } });
        Assert.Equal((plain[..at], "stop"), (cut, finish));
        var (kept, _, keptFinish) = await Greedy(12, new { stop = new[] { stop }, include_stop_str_in_output = true });
        Assert.Equal((plain[..(at + stop.Length)], "stop"), (kept, keptFinish));
    }

    [Fact]
    public async Task Completions_IncludeStopStrInOutputWithAStopTokenId_KeepsTheTokensText()
    {
        var (_, plain, _) = await Greedy(8);
        var (without, ids, _) = await Greedy(8, new { stop_token_ids = new[] { plain[2] } });
        Assert.Equal(3, ids.Length);
        var (with, _, _) = await Greedy(8, new { stop_token_ids = new[] { plain[2] }, include_stop_str_in_output = true });
        Assert.True(with.Length > without.Length && with.StartsWith(without, StringComparison.Ordinal), $"«{without}» then «{with}»");
    }

    [Fact]
    public async Task Completions_BadWords_TheWordNeverGeneratedAloneOrAfterASpace()
    {
        var (_, plain, _) = await Greedy(8, new { ignore_eos = true });
        var (_, detok) = await HttpJson.PostAsync(Http, "/detokenize", new { model = Model, tokens = new[] { plain[0] } });
        string word = ((string)detok["prompt"]!).Trim();
        Assert.False(string.IsNullOrEmpty(word), "the first greedy token is a word");
        async Task<int[]> Ids(string text) =>
            (await HttpJson.PostAsync(Http, "/tokenize", new { model = Model, prompt = text, add_special_tokens = false })).Body["tokens"]!.AsArray().Select(t => (int)t!).ToArray();
        int[][] forms = [await Ids(word), await Ids(" " + word)];

        var (_, banned, _) = await Greedy(8, new { ignore_eos = true, bad_words = new[] { "  " + word } });
        var (_, chat, _) = await Greedy(8, new { ignore_eos = true, bad_words = new[] { word } }, "/v1/chat/completions");

        Assert.NotEqual(plain[0], banned[0]);
        foreach (var form in forms.Where(f => f.Length == 1))
        {
            Assert.DoesNotContain(form[0], banned);
            Assert.DoesNotContain(form[0], chat);
        }

        var (status, answer) = await HttpJson.PostSmallestAsync(Http, "/v1/completions", Model, "{\"bad_words\": [\"  \"]}");
        Assert.True(status == 400, answer.ToJsonString());
        Assert.Equal("bad_words", (string)answer["error"]!["param"]!);
    }

    [Fact]
    public async Task Logprobs_ReturnTokensAsTokenIds_EveryTokenNamedByItsIdAsVllm()
    {
        var completion = new JsonObject { ["model"] = Model, ["prompt"] = Prompt, ["max_tokens"] = 4, ["temperature"] = 0, ["logprobs"] = 2,
            ["echo"] = true, ["return_token_ids"] = true, ["return_tokens_as_token_ids"] = true };
        var (status, answer) = await HttpJson.PostRawAsync(Http, "/v1/completions", completion.ToJsonString());
        Assert.True(status == 200, answer.ToJsonString());
        var choice = answer["choices"]![0]!;
        int[] ids = [.. answer["prompt_token_ids"]!.AsArray().Select(t => (int)t!), .. choice["token_ids"]!.AsArray().Select(t => (int)t!)];
        var lp = choice["logprobs"]!;
        Assert.Equal(ids.Select(id => $"token_id:{id}"), lp["tokens"]!.AsArray().Select(t => (string)t!));
        Assert.All(lp["top_logprobs"]!.AsArray().Skip(1), top => Assert.All(top!.AsObject(), kv => Assert.Matches("^token_id:[0-9]+$", kv.Key)));
        completion.Remove("return_tokens_as_token_ids");
        var (_, plain) = await HttpJson.PostRawAsync(Http, "/v1/completions", completion.ToJsonString());
        Assert.Equal(plain["choices"]![0]!["logprobs"]!["text_offset"]!.ToJsonString(), lp["text_offset"]!.ToJsonString());
        Assert.Equal((string)plain["choices"]![0]!["text"]!, (string)choice["text"]!);

        var chat = HttpJson.GreedyChat(Model, Prompt, 3, new JsonObject { ["logprobs"] = true, ["top_logprobs"] = 2, ["return_token_ids"] = true, ["return_tokens_as_token_ids"] = true });
        var chatChoice = await HttpJson.FirstChatChoiceAsync(Http, chat);
        var content = chatChoice["logprobs"]!["content"]!.AsArray();
        Assert.Equal(chatChoice["token_ids"]!.AsArray().Select(t => $"token_id:{(int)t!}"), content.Select(c => (string)c!["token"]!));
        Assert.All(content, c => Assert.Equal(System.Text.Encoding.UTF8.GetBytes((string)c!["token"]!).Select(b => (int)b), c!["bytes"]!.AsArray().Select(b => (int)b!)));
        Assert.All(content, c => Assert.All(c!["top_logprobs"]!.AsArray(), t => Assert.StartsWith("token_id:", (string)t!["token"]!, StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("/v1/completions", "{\"allowed_token_ids\": []}", "allowed_token_ids")]
    [InlineData("/v1/completions", "{\"allowed_token_ids\": [-1]}", "allowed_token_ids")]
    [InlineData("/v1/completions", "{\"allowed_token_ids\": [99999999]}", "allowed_token_ids")]
    [InlineData("/v1/completions", "{\"skip_special_tokens\": \"no\"}", "skip_special_tokens")]
    [InlineData("/v1/chat/completions", "{\"top_logprobs\": 3}", "top_logprobs")]
    [InlineData("/v1/completions", "{\"suffix\": \"x\"}", "suffix")]
    [InlineData("/v1/completions", "{\"priority\": 3}", "priority")]
    [InlineData("/v1/completions", "{\"logits_processors\": [\"x\"]}", "logits_processors")]
    [InlineData("/v1/chat/completions", "{\"add_special_tokens\": 1}", "add_special_tokens")]
    [InlineData("/v1/chat/completions", "{\"tool_choice\": \"sometimes\"}", "tool_choice")]
    [InlineData("/v1/chat/completions", "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}", "tool_choice")]
    [InlineData("/v1/chat/completions", "{\"reasoning_effort\": \"extreme\"}", "reasoning_effort")]
    [InlineData("/v1/chat/completions", "{\"functions\": [{\"name\": \"f\"}]}", "functions")]
    [InlineData("/v1/chat/completions", "{\"function_call\": \"auto\"}", "function_call")]
    [InlineData("/v1/chat/completions", "{\"audio\": {\"voice\": \"alloy\"}}", "audio")]
    [InlineData("/v1/chat/completions", "{\"modalities\": [\"text\", \"audio\"]}", "modalities")]
    public async Task Requests_FieldAskingForWhatIsNotImplemented_400NamingIt(string path, string extra, string field)
    {
        var (status, answer) = await HttpJson.PostSmallestAsync(Http, path, Model, extra, maxTokens: 2);
        HttpJson.AssertBadRequest(status, answer, field, field);
    }

    [Fact]
    public async Task Requests_UnimplementedFieldsAskingForNothing_Served()
    {
        var (plain, _, _) = await Greedy(4);
        var (same, _, _) = await Greedy(4, new
        {
            echo = false, use_beam_search = false, bad_words = Array.Empty<string>(), priority = 0, logits_processors = Array.Empty<string>(),
            return_tokens_as_token_ids = false, prompt_logprobs = (int?)null, truncate_prompt_tokens = (int?)null, spaces_between_special_tokens = true,
        });
        Assert.Equal(plain, same);
        var (chat, _, _) = await Greedy(4, new
        {
            continue_final_message = false, echo = false, add_special_tokens = false, modalities = new[] { "text" }, tool_choice = "auto",
            functions = Array.Empty<object>(), parallel_tool_calls = true, reasoning_effort = "medium",
        }, "/v1/chat/completions");
        Assert.NotNull(chat);
    }

    [Fact]
    public async Task Generate_OutputFields_SameAsRest()
    {
        using var channel = GrpcChannel.ForAddress(fixture.Server.Address);
        var client = new V1.Generation.GenerationClient(channel);
        var (restText, restIds, _) = await Greedy(6, new
        {
            allowed_token_ids = new[] { 995, 1212, EndOfText }, skip_special_tokens = false, include_stop_str_in_output = true, ignore_eos = true,
            logit_bias = new Dictionary<string, int> { [EndOfText.ToString(System.Globalization.CultureInfo.InvariantCulture)] = 3 },
            bad_words = new[] { "world" },
        });
        var request = new V1.GenerateRequest
        {
            Model = Model, Prompt = Prompt, MaxTokens = 6, Temperature = 0, SkipSpecialTokens = false, IncludeStopStrInOutput = true, IgnoreEos = true,
            LogitBias = { [EndOfText] = 3 },
            BadWords = { "world" },
        };
        request.AllowedTokenIds.AddRange([995, 1212, EndOfText]);
        var reply = await client.GenerateAsync(request);
        Assert.Equal(restIds, reply.TokenIds.ToArray());
        Assert.Equal(restText, reply.Text);
        request.AllowedTokenIds.Add(99_999_999);
        var error = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(() => client.GenerateAsync(request).ResponseAsync);
        Assert.Equal(global::Grpc.Core.StatusCode.InvalidArgument, error.StatusCode);
    }
}
