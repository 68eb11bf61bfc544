using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// Speculative decoding through real servers on the demo model (float32): OpenAI's <c>prediction</c> on a server without
/// n-gram drafts, and a second server drafting every request by n-gram lookup. Drafts change how many steps an output takes,
/// never the output: every answer is checked against the same request without drafts.
/// </summary>
public sealed partial class SpeculativeDecodingTests(DemoServerFixture plain, NgramDemoServerFixture ngram)
    : IClassFixture<DemoServerFixture>, IClassFixture<NgramDemoServerFixture>
{
    private static JsonObject Completion(string model, string prompt, int maxTokens, object? prediction = null, double temperature = 0, ulong? seed = null)
    {
        var body = new JsonObject
        {
            ["model"] = model, ["prompt"] = prompt, ["max_tokens"] = maxTokens, ["temperature"] = temperature, ["ignore_eos"] = true,
            ["return_token_ids"] = true,
        };
        if (seed is not null)
            body["seed"] = seed;
        if (prediction is not null)
            body["prediction"] = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(prediction));
        return body;
    }

    private static async Task<JsonNode> Post(HttpClient http, JsonObject body)
    {
        var (status, answer) = await HttpJson.PostAsync(http, "/v1/completions", body);
        Assert.True(status == 200, answer.ToJsonString());
        return answer;
    }

    private static int[] Ids(JsonNode answer) => [.. answer["choices"]![0]!["token_ids"]!.AsArray().Select(t => (int)t!)];

    private static string Text(JsonNode answer) => (string)answer["choices"]![0]!["text"]!;

    [Theory]
    [InlineData("serving-demo-tiny", 0.0)]
    [InlineData("demo-all-r8", 0.0)]
    [InlineData("demo-mlp-r4", 0.8)]
    public async Task Completions_PredictionOfTheOutput_SameOutputAndMostOfItAccepted(string model, double temperature)
    {
        const string prompt = "Rewrite the following function so that it";
        var alone = await Post(plain.Http, Completion(model, prompt, 60, temperature: temperature, seed: 11));
        Assert.Null(alone["usage"]!["completion_tokens_details"]);

        var predicted = await Post(plain.Http, Completion(model, prompt, 60, new { type = "content", content = Text(alone) }, temperature, 11));

        Assert.Equal(Ids(alone), Ids(predicted));
        Assert.Equal(Text(alone), Text(predicted));
        var details = predicted["usage"]!["completion_tokens_details"]!;
        int accepted = (int)details["accepted_prediction_tokens"]!, rejected = (int)details["rejected_prediction_tokens"]!;
        // Four drafts a step: of 60 tokens, all but the first and one in five come from the prediction.
        Assert.True(accepted >= 40, $"accepted {accepted}, rejected {rejected}");
        Assert.True(rejected <= 8, $"accepted {accepted}, rejected {rejected}");
    }

    [Fact]
    public async Task Completions_EditedPredictionsInOneBatchWithAdapters_EachOutputAsWithout()
    {
        string[] models = ["serving-demo-tiny", "demo-all-r8", "demo-attn-r16", "demo-mlp-r4"];
        var alone = await Task.WhenAll(models.Select(m => Post(plain.Http, Completion(m, "Edit this text: " + m, 48))));
        // Each prediction: the output with its middle replaced, and a word inserted near the end.
        string Edited(string text) => text[..(text.Length / 3)] + " something else entirely " + text[(text.Length / 2)..^4] + " more" + text[^4..];

        var predicted = await Task.WhenAll(models.Select((m, i) => Post(plain.Http, Completion(m, "Edit this text: " + m, 48,
            new { type = "content", content = new[] { new { type = "text", text = Edited(Text(alone[i])) } } }))));

        for (int i = 0; i < models.Length; i++)
        {
            Assert.Equal(Ids(alone[i]), Ids(predicted[i]));
            Assert.True((int)predicted[i]["usage"]!["completion_tokens_details"]!["accepted_prediction_tokens"]! > 10, predicted[i].ToJsonString());
        }
    }

    [Fact]
    public async Task Chat_StreamedWithPrediction_SameTextAndTheTallyInTheUsageChunk()
    {
        JsonObject Chat(bool stream, string? prediction) => new()
        {
            ["model"] = "demo-attn-r16", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Fix the typo in my letter" }),
            ["max_tokens"] = 40, ["temperature"] = 0, ["ignore_eos"] = true, ["stream"] = stream,
            ["stream_options"] = stream ? new JsonObject { ["include_usage"] = true } : null,
            ["prediction"] = prediction is null ? null : new JsonObject { ["type"] = "content", ["content"] = prediction },
        };
        var (status, alone) = await HttpJson.PostAsync(plain.Http, "/v1/chat/completions", Chat(false, null));
        Assert.Equal(200, status);
        string expected = (string)alone["choices"]![0]!["message"]!["content"]!;

        var events = await HttpJson.StreamAsync(plain.Http, "/v1/chat/completions", Chat(true, expected));

        var chunks = events.Where(e => e != "[DONE]").Select(e => JsonNode.Parse(e)!).ToList();
        string streamed = string.Concat(chunks.Where(c => c["choices"]!.AsArray().Count > 0).Select(c => (string?)c["choices"]![0]!["delta"]!["content"]));
        Assert.Equal(expected, streamed);
        var usage = chunks[^1]["usage"]!;
        Assert.Equal(40, (int)usage["completion_tokens"]!);
        Assert.True((int)usage["completion_tokens_details"]!["accepted_prediction_tokens"]! >= 25, usage.ToJsonString());
    }

    [Fact]
    public async Task Completions_NgramServer_SameOutputsAsWithoutDraftsAndDraftsVerified()
    {
        string[] models = ["serving-demo-tiny", "demo-all-r8", "demo-mlp-r4"];
        string prompt = string.Join(" ", Enumerable.Repeat("the cat sat on the mat and the dog sat on the log", 4));
        var before = await Metrics(ngram.Http);
        var requests = models.Select(m => Completion(m, prompt, 64)).Append(Completion("demo-attn-r16", prompt, 64, temperature: 0.9, seed: 3)).ToList();

        var expected = await Task.WhenAll(requests.Select(r => Post(plain.Http, r)));
        var drafted = await Task.WhenAll(requests.Select(r => Post(ngram.Http, r)));

        for (int i = 0; i < requests.Count; i++)
            Assert.Equal(Ids(expected[i]), Ids(drafted[i]));
        var after = await Metrics(ngram.Http);
        double drafts = Value(after, "vllm:spec_decode_num_drafts_total") - Value(before, "vllm:spec_decode_num_drafts_total");
        double draftTokens = Value(after, "vllm:spec_decode_num_draft_tokens_total") - Value(before, "vllm:spec_decode_num_draft_tokens_total");
        double accepted = Value(after, "vllm:spec_decode_num_accepted_tokens_total") - Value(before, "vllm:spec_decode_num_accepted_tokens_total");
        double atFirst = Value(after, "vllm:spec_decode_num_accepted_tokens_per_pos_total", "position=\"0\"")
            - Value(before, "vllm:spec_decode_num_accepted_tokens_per_pos_total", "position=\"0\"");
        // The demo model writes few repeats; the loop one greedy output falls into ("Exclusive Exclusive …") is drafted and taken.
        Assert.True(drafts >= 5 && accepted >= 1, $"{drafts} drafts, {accepted} accepted: {string.Join(" || ", expected.Select(Text))}");
        Assert.InRange(draftTokens, drafts, 4 * drafts);
        Assert.InRange(accepted, atFirst, draftTokens);
        Assert.Null(drafted[0]["usage"]!["completion_tokens_details"]);     // no prediction, no prediction tally
    }

    [Theory]
    [InlineData("\"text\"", "prediction", "must be an object")]
    [InlineData("{\"type\": \"file\", \"content\": \"x\"}", "prediction.type", "must be \"content\"")]
    [InlineData("{\"type\": \"content\", \"content\": 5}", "prediction.content", "must be a string or an array")]
    [InlineData("{\"type\": \"content\", \"content\": [{\"type\": \"image_url\"}]}", "prediction.content[0]", "must be {\"type\": \"text\"")]
    public async Task Completions_MalformedPrediction_400NamingIt(string prediction, string param, string problem)
    {
        var (status, answer) = await HttpJson.PostRawAsync(plain.Http, "/v1/chat/completions",
            $"{{\"model\": \"serving-demo-tiny\", \"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}], \"max_tokens\": 2, \"prediction\": {prediction}}}");

        HttpJson.AssertBadRequest(status, answer, param, problem);
    }

    [Fact]
    public async Task Completions_PredictionLongerThanTheServerAccepts_400()
    {
        var (status, answer) = await HttpJson.PostAsync(ngram.Http, "/v1/completions",
            Completion("serving-demo-tiny", "hi", 2, new { type = "content", content = string.Join(" ", Enumerable.Repeat("word", 400)) }));

        HttpJson.AssertBadRequest(status, answer, "prediction.content", "longer than the 300 tokens");
    }

    [Fact]
    public async Task Grpc_Prediction_SameTokensAndTheTallyInUsage()
    {
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(plain.Server.Address);
        var client = new V1.Generation.GenerationClient(channel);
        var (alone, withPrediction) = await Predicted(client, "demo-all-r8", "gRPC predicts", 30);

        var predicted = await client.GenerateAsync(withPrediction);

        Assert.Equal(alone.TokenIds, predicted.TokenIds);
        Assert.Equal(0, alone.Usage.AcceptedPredictionTokens);
        Assert.True(predicted.Usage.AcceptedPredictionTokens >= 18, predicted.Usage.ToString());
    }

    [Fact]
    public async Task GrpcStream_Prediction_SameTokensAndTheTallyInTheLastMessage()
    {
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(plain.Server.Address);
        var client = new V1.Generation.GenerationClient(channel);
        var (alone, withPrediction) = await Predicted(client, "demo-mlp-r4", "gRPC streams a prediction", 24);

        var ids = new List<int>();
        V1.Usage? usage = null;
        using var call = client.GenerateStream(withPrediction);
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            ids.AddRange(call.ResponseStream.Current.TokenIds);
            usage = call.ResponseStream.Current.Usage ?? usage;
        }

        Assert.Equal(alone.TokenIds, ids);
        Assert.NotNull(usage);
        Assert.Equal(24, usage.CompletionTokens);
        Assert.True(usage.AcceptedPredictionTokens >= 14, usage.ToString());
    }

    /// <summary>A greedy request's answer alone, and the same request predicting that answer.</summary>
    private static async Task<(V1.GenerateResponse Alone, V1.GenerateRequest WithPrediction)> Predicted(V1.Generation.GenerationClient client, string model,
        string prompt, int maxTokens)
    {
        var request = new V1.GenerateRequest { Model = model, Prompt = prompt, MaxTokens = maxTokens, Temperature = 0, IgnoreEos = true };
        var alone = await client.GenerateAsync(request);
        var withPrediction = request.Clone();
        withPrediction.Prediction = alone.Text;
        return (alone, withPrediction);
    }

    [Fact]
    public async Task Start_DraftsPerStepOutOfRange_FailsNamingTheSetting()
    {
        var ex = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() =>
            ServerProcess.StartAsync("--cache-dir", plain.CacheDirectory, "--num-speculative-tokens", "40"));

        Assert.Contains("Serving:Speculation:Tokens must be within 0..16", ex.Message, StringComparison.Ordinal);
    }

    private static Task<string> Metrics(HttpClient http) => http.GetStringAsync("/metrics");

    private static double Value(string text, string name, string labels = "")
    {
        double total = 0;
        foreach (Match match in Sample().Matches(text))
            if (match.Groups["name"].Value == name && match.Groups["labels"].Value.Contains(labels, StringComparison.Ordinal))
                total += double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture);
        return total;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?<labels>[^}]*)\})? (?<value>\S+)$", RegexOptions.Multiline)]
    private static partial Regex Sample();
}
