using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// logit_bias, the penalties, min_p and min_tokens through the real server: each changes greedy output the way its definition
/// says, on both front doors' REST bodies; out-of-range values are 400s naming the field.
/// </summary>
[Collection(nameof(CompletionsServer))]
public sealed class SamplingAdjustmentsTests(DemoServerFixture fixture)
{
    private const string Model = "serving-demo-tiny";
    private const string Prompt = "The quick brown fox jumps over";
    private HttpClient Http => fixture.Http;

    private async Task<(int[] Ids, string Finish)> Greedy(int maxTokens, object? extra = null, string? adapter = null)
    {
        var body = new JsonObject
        {
            ["model"] = adapter ?? Model, ["prompt"] = Prompt, ["max_tokens"] = maxTokens, ["temperature"] = 0, ["return_token_ids"] = true,
        };
        if (extra is not null)
            foreach (var (key, value) in JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(extra))!.AsObject())
                body[key] = value?.DeepClone();
        var (status, answer) = await HttpJson.PostRawAsync(Http, "/v1/completions", body.ToJsonString());
        Assert.True(status == 200, answer.ToJsonString());
        var choice = answer["choices"]![0]!;
        return (choice["token_ids"]!.AsArray().Select(t => (int)t!).ToArray(), (string)choice["finish_reason"]!);
    }

    [Fact]
    public async Task Completions_LogitBiasMinus100OnTheGreedyToken_NeverGenerated()
    {
        var (plain, _) = await Greedy(8);
        var banned = plain.Distinct().ToArray();
        var (biased, _) = await Greedy(8, new { logit_bias = banned.ToDictionary(t => t.ToString(System.Globalization.CultureInfo.InvariantCulture), _ => -100) });
        Assert.Equal(8, biased.Length);
        Assert.Empty(biased.Intersect(banned));
    }

    [Fact]
    public async Task Completions_LogitBiasPlus100_EveryTokenIsThatToken()
    {
        var (ids, _) = await Greedy(6, new { logit_bias = new Dictionary<string, int> { ["995"] = 100 } });
        Assert.All(ids, id => Assert.Equal(995, id));
        var (sampled, _) = await Greedy(6, new { logit_bias = new Dictionary<string, int> { ["995"] = 100 }, temperature = 1.0, seed = 3 });
        Assert.All(sampled, id => Assert.Equal(995, id));
    }

    [Fact]
    public async Task Completions_MinTokensWithTheFirstTokenAsStopId_GeneratesThatMany()
    {
        var (plain, _) = await Greedy(8);
        var (stopped, finish) = await Greedy(8, new { stop_token_ids = new[] { plain[0] } });
        Assert.Equal((1, "stop"), (stopped.Length, finish));
        var (held, heldFinish) = await Greedy(8, new { stop_token_ids = new[] { plain[0] }, min_tokens = 5 });
        Assert.DoesNotContain(plain[0], held[..5]);                                   // suppressed while fewer than 5
        Assert.True(held.Length >= 5, $"{held.Length} tokens ({heldFinish})");
    }

    [Fact]
    public async Task Completions_RepetitionPenalty_GreedyOutputMovesOffSeenTokens()
    {
        var (plain, _) = await Greedy(24, adapter: "demo-all-r8");
        Assert.True(plain.Length > plain.Distinct().Count(), "precondition: the greedy output repeats a token");
        var (penalised, _) = await Greedy(24, new { repetition_penalty = 100.0 }, adapter: "demo-all-r8");
        Assert.Equal(penalised.Length, penalised.Distinct().Count());                 // a seen token's positive logit is divided by 100
    }

    [Fact]
    public async Task Completions_FrequencyPenaltyOnAnAdapter_ChangesARepeatingGreedyOutput()
    {
        var (plain, _) = await Greedy(24, adapter: "demo-all-r8");
        Assert.True(plain.Length > plain.Distinct().Count(), "precondition: the greedy output repeats a token");
        var (penalised, _) = await Greedy(24, new { frequency_penalty = 2.0, presence_penalty = 2.0 }, adapter: "demo-all-r8");
        Assert.NotEqual(plain, penalised);
        Assert.True(penalised.Distinct().Count() >= plain.Distinct().Count());
    }

    [Fact]
    public async Task Completions_MinPOne_IsGreedy()
    {
        var (plain, _) = await Greedy(8);
        var (minP, _) = await Greedy(8, new { temperature = 1.5, min_p = 1.0, seed = 9 });
        Assert.Equal(plain, minP);
    }

    [Theory]
    [InlineData("""{"logit_bias":{"50259":5}}""", "logit_bias")]
    [InlineData("""{"logit_bias":{"-3":5}}""", "logit_bias")]
    [InlineData("""{"logit_bias":{"abc":5}}""", "logit_bias")]
    [InlineData("""{"logit_bias":{"5":101}}""", "logit_bias")]
    [InlineData("""{"logit_bias":[1,2]}""", "logit_bias")]
    [InlineData("""{"presence_penalty":2.5}""", "presence_penalty")]
    [InlineData("""{"frequency_penalty":-3}""", "frequency_penalty")]
    [InlineData("""{"repetition_penalty":0}""", "repetition_penalty")]
    [InlineData("""{"min_p":1.5}""", "min_p")]
    [InlineData("""{"min_tokens":9,"max_tokens":8}""", "min_tokens")]
    [InlineData("""{"min_tokens":4000}""", "min_tokens")]
    public async Task Completions_AdjustmentOutOfRange_400NamingTheField(string fields, string param)
    {
        var body = JsonNode.Parse(fields)!.AsObject();
        body["model"] = Model;
        body["prompt"] = Prompt;
        foreach (string path in new[] { "/v1/completions", "/v1/chat/completions" })
        {
            if (path.Contains("chat", StringComparison.Ordinal))
            {
                body.Remove("prompt");
                body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = Prompt });
            }

            var (status, error) = await HttpJson.PostRawAsync(Http, path, body.ToJsonString());
            Assert.Equal(400, status);
            Assert.Equal(param, (string?)error["error"]!["param"]);
        }
    }

    [Fact]
    public async Task Completions_MoreLogitBiasEntriesThanTheBound_400()
    {
        var bias = Enumerable.Range(0, 1025).ToDictionary(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture), _ => 1);
        var (status, error) = await HttpJson.PostAsync(Http, "/v1/completions", new { model = Model, prompt = Prompt, logit_bias = bias });
        Assert.Equal(400, status);
        Assert.Contains("at most 1024", (string?)error["error"]!["message"]);
    }
}
