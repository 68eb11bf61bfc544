using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// Prompt scoring through the real server: OpenAI's <c>echo</c> with <c>logprobs</c> (the prompt's tokens scored ahead of
/// the output's, as lm-eval's loglikelihood requests read them) and vLLM's <c>prompt_logprobs</c>, each score equal to the
/// logprob the model gives that token when generating it from the tokens before it, whatever the prefix cache holds.
/// </summary>
public sealed class PromptLogprobsTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    private const string Model = "serving-demo-tiny";
    private const string Prompt = "The cat sat on the mat and looked at the door";

    private async Task<JsonNode> Post(string path, object body)
    {
        var (status, answer) = await HttpJson.PostAsync(fixture.Http, path, body);
        Assert.True(status == 200, answer.ToJsonString());
        return answer;
    }

    private async Task<int[]> PromptIds() =>
        (await Post("/tokenize", new { model = Model, prompt = Prompt }))["tokens"]!.AsArray().Select(t => (int)t!).ToArray();

    [Fact]
    public async Task Completions_EchoWithLogprobs_EachPromptTokenScoredAsGeneratingItWould()
    {
        int[] ids = await PromptIds();
        await Post("/v1/completions", new { model = Model, prompt = Prompt, max_tokens = 1 });      // the prompt's blocks are cached now
        var answer = await Post("/v1/completions", new { model = Model, prompt = Prompt, echo = true, logprobs = 2, max_tokens = 3, temperature = 0, ignore_eos = true });
        var choice = answer["choices"]![0]!;
        Assert.StartsWith(Prompt, (string)choice["text"]!, StringComparison.Ordinal);
        var logprobs = choice["logprobs"]!;
        var scores = logprobs["token_logprobs"]!.AsArray();
        Assert.Equal(ids.Length + 3, scores.Count);
        Assert.Null(scores[0]);
        Assert.Null(logprobs["top_logprobs"]![0]);
        Assert.Equal(0, (int)answer["usage"]!["prompt_tokens_details"]!["cached_tokens"]!);       // scoring computes the whole prompt
        var offsets = logprobs["text_offset"]!.AsArray().Select(o => (int)o!).ToList();
        Assert.Equal(offsets.Order(), offsets);

        foreach (int k in new[] { 1, ids.Length / 2, ids.Length - 1 })
        {
            // The model's logprob of ids[k] after ids[..k], generating it (the only allowed token; logprobs stay the raw ones).
            var forced = await Post("/v1/completions", new { model = Model, prompt = ids[..k], max_tokens = 1, allowed_token_ids = new[] { ids[k] }, logprobs = 0 });
            float expected = (float)forced["choices"]![0]!["logprobs"]!["token_logprobs"]![0]!;
            Assert.Equal(expected, (float)scores[k]!, 3);
            Assert.Equal((string)forced["choices"]![0]!["logprobs"]!["tokens"]![0]!, (string)logprobs["tokens"]![k]!);
        }
    }

    [Fact]
    public async Task Completions_EchoStreamed_PromptFirstThenTheSameText()
    {
        var body = new { model = Model, prompt = Prompt, echo = true, logprobs = 1, max_tokens = 4, temperature = 0, ignore_eos = true };
        string whole = (string)(await Post("/v1/completions", body))["choices"]![0]!["text"]!;
        var events = await HttpJson.StreamAsync(fixture.Http, "/v1/completions", new { body.model, body.prompt, body.echo, body.logprobs, body.max_tokens, body.temperature, body.ignore_eos, stream = true });
        var chunks = events.Where(d => d != "[DONE]").Select(d => JsonNode.Parse(d)!["choices"]![0]!).ToList();
        Assert.Equal(Prompt, (string)chunks[0]["text"]!);
        Assert.Null(chunks[0]["logprobs"]!["token_logprobs"]![0]);
        Assert.Equal(whole, string.Concat(chunks.Select(c => (string)c["text"]!)));
    }

    [Fact]
    public async Task PromptLogprobs_CompletionsAndChat_VllmShapeWithTheTokenItsRankAndAlternatives()
    {
        int[] ids = await PromptIds();
        var completion = await Post("/v1/completions", new { model = Model, prompt = Prompt, prompt_logprobs = 2, max_tokens = 1 });
        var entries = completion["choices"]![0]!["prompt_logprobs"]!.AsArray();
        Assert.Equal(ids.Length, entries.Count);
        Assert.Null(entries[0]);
        for (int k = 1; k < ids.Length; k++)
        {
            var entry = entries[k]!.AsObject();
            var own = entry[ids[k].ToString(System.Globalization.CultureInfo.InvariantCulture)]!;
            int rank = (int)own["rank"]!;
            Assert.True(rank >= 1);
            Assert.InRange(entry.Count, 2, 3);                               // the token, and the two most likely (it may be one)
            Assert.Contains(entry, e => (int)e.Value!["rank"]! == 1);
            Assert.True((float)own["logprob"]! <= 0);
        }

        var chat = await Post("/v1/chat/completions", new { model = Model, messages = new[] { new { role = "user", content = Prompt } }, prompt_logprobs = 0, max_tokens = 1 });
        var chatEntries = chat["prompt_logprobs"]!.AsArray();
        Assert.Null(chatEntries[0]);
        Assert.All(chatEntries.Skip(1), e => Assert.Single(e!.AsObject()));
        var streamed = await HttpJson.StreamAsync(fixture.Http, "/v1/chat/completions",
            new { model = Model, messages = new[] { new { role = "user", content = Prompt } }, prompt_logprobs = 0, max_tokens = 1, stream = true });
        Assert.Single(streamed, d => d != "[DONE]" && JsonNode.Parse(d)!["prompt_logprobs"] is not null);
    }

    [Theory]
    [InlineData("/v1/completions", """{"prompt_logprobs": 21}""", "prompt_logprobs")]
    [InlineData("/v1/completions", """{"prompt_logprobs": -1}""", "prompt_logprobs")]
    [InlineData("/v1/completions", """{"echo": "yes"}""", "echo")]
    [InlineData("/v1/chat/completions", """{"echo": "yes"}""", "echo")]
    public async Task Requests_BadScoringFields_400NamingThem(string path, string extra, string field)
    {
        var (status, answer) = await HttpJson.PostSmallestAsync(fixture.Http, path, Model, extra, maxTokens: 1);
        Assert.Equal(400, status);
        Assert.Equal(field, (string?)answer["error"]!["param"]);
    }
}
