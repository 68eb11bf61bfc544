using System.ClientModel;
using System.Text.Json.Nodes;
using OpenAI.Embeddings;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// <c>/v1/embeddings</c> through the real server and the official OpenAI library (which asks for base64): unit vectors of
/// the hidden size, the same for an input alone or among others, other ones under an adapter, Matryoshka
/// <c>dimensions</c> as the raw vector's first dimensions normalised, and a call of more inputs than the queue holds.
/// </summary>
public sealed class EmbeddingsEndpointTests(StructuredOutputServerFixture fixture) : IClassFixture<StructuredOutputServerFixture>
{
    private const int Hidden = 64;                                 // the tiny preset's

    private EmbeddingClient Client(string model) =>
        new(model, new ApiKeyCredential("unused-in-open-mode"), new OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.Server.Address, "/v1") });

    private async Task<(int Status, JsonNode Body)> Embed(JsonObject body) => await HttpJson.PostAsync(fixture.Http, "/v1/embeddings", body);

    private static float[] Floats(JsonNode item) => [.. item["embedding"]!.AsArray().Select(v => (float)v!)];

    private static void AssertClose(IReadOnlyList<float> expected, IReadOnlyList<float> actual, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5, $"{what}, dimension {i}: {actual[i]} against {expected[i]}");
    }

    [Fact]
    public async Task GenerateEmbeddings_OfficialClient_UnitVectorsEachAsAlone()
    {
        string[] texts = ["The patient reports chest pain.", "Translate this sentence.", "Short"];
        var alone = new List<float[]>();
        foreach (string text in texts)
            alone.Add((await Client("base").GenerateEmbeddingAsync(text)).Value.ToFloats().ToArray());

        var together = (await Client("base").GenerateEmbeddingsAsync(texts)).Value;

        Assert.Equal(3, together.Count);
        for (int i = 0; i < texts.Length; i++)
        {
            var vector = together.Single(e => e.Index == i).ToFloats().ToArray();
            Assert.Equal(Hidden, vector.Length);
            Assert.Equal(1.0, Math.Sqrt(vector.Sum(v => (double)v * v)), 5);
            AssertClose(alone[i], vector, $"input {i}");
        }

        Assert.NotEqual(alone[0], alone[1]);
    }

    [Fact]
    public async Task Embeddings_FloatAndBase64_SameValues()
    {
        var (status, floats) = await Embed(new JsonObject { ["model"] = "base", ["input"] = "same text" });
        Assert.True(status == 200, floats.ToJsonString());
        var encoded = (await Client("base").GenerateEmbeddingAsync("same text")).Value.ToFloats().ToArray();

        Assert.Equal(Floats(floats["data"]![0]!), encoded);
        Assert.Equal("list", (string)floats["object"]!);
        Assert.Equal("base", (string)floats["model"]!);
        Assert.Equal((int)floats["usage"]!["prompt_tokens"]!, (int)floats["usage"]!["total_tokens"]!);
        Assert.True((int)floats["usage"]!["prompt_tokens"]! >= 2);
    }

    [Fact]
    public async Task Embeddings_Adapter_OtherVectorAndTheSameBesideTheBase()
    {
        string adapter = StructuredOutputServerFixture.Adapters[0];
        var baseAlone = (await Client("base").GenerateEmbeddingAsync("tenant text")).Value.ToFloats().ToArray();
        var adapted = (await Client(adapter).GenerateEmbeddingAsync("tenant text")).Value.ToFloats().ToArray();

        var both = await Task.WhenAll(Enumerable.Range(0, 6).Select(async i =>
            (await Client(i % 2 == 0 ? "base" : adapter).GenerateEmbeddingAsync("tenant text")).Value.ToFloats().ToArray()));

        Assert.True(baseAlone.Zip(adapted, (a, b) => Math.Abs(a - b)).Max() > 1e-3, "the adapter changed nothing");
        for (int i = 0; i < both.Length; i++)
            AssertClose(i % 2 == 0 ? baseAlone : adapted, both[i], $"call {i}");
    }

    [Fact]
    public async Task Embeddings_DimensionsAndNormalizeFalse_FirstDimensionsOfTheRawStateNormalised()
    {
        var (_, raw) = await Embed(new JsonObject { ["model"] = "base", ["input"] = "matryoshka", ["normalize"] = false });
        var (_, cut) = await Embed(new JsonObject { ["model"] = "base", ["input"] = "matryoshka", ["dimensions"] = 16 });
        var hidden = Floats(raw["data"]![0]!);

        Assert.Equal(Hidden, hidden.Length);
        Assert.True(Math.Abs(Math.Sqrt(hidden.Sum(v => (double)v * v)) - 1) > 1e-3, "the raw state came back normalised");
        double norm = Math.Sqrt(hidden.Take(16).Sum(v => (double)v * v));
        AssertClose([.. hidden.Take(16).Select(v => (float)(v / norm))], Floats(cut["data"]![0]!), "16 dimensions");
        var official = (await Client("base").GenerateEmbeddingAsync("matryoshka", new EmbeddingGenerationOptions { Dimensions = 16 })).Value.ToFloats().ToArray();
        Assert.Equal(Floats(cut["data"]![0]!), official);
    }

    [Fact]
    public async Task Embeddings_MoreInputsThanTheQueueHolds_AllEmbeddedInOrder()
    {
        var inputs = new JsonArray([.. Enumerable.Range(0, 300).Select(i => (JsonNode)$"item {i % 7}")]);

        var (status, body) = await Embed(new JsonObject { ["model"] = "base", ["input"] = inputs });

        Assert.True(status == 200, body.ToJsonString()[..Math.Min(400, body.ToJsonString().Length)]);
        var data = body["data"]!.AsArray();
        Assert.Equal(Enumerable.Range(0, 300), data.Select(d => (int)d!["index"]!));
        AssertClose(Floats(data[0]!), Floats(data[7]!), "the same text at 0 and 7");
    }

    private async Task<float[][]> Embeddings(params string[] texts)
    {
        var (status, body) = await Embed(new JsonObject { ["model"] = "base", ["input"] = new JsonArray([.. texts.Select(t => (JsonNode)t)]) });
        Assert.True(status == 200, body.ToJsonString());
        return [.. body["data"]!.AsArray().Select(d => Floats(d!))];
    }

    private static double Cosine(float[] a, float[] b) => a.Zip(b, (x, y) => (double)x * y).Sum();

    [Fact]
    public async Task Score_OneAgainstManyAndPairs_TheEmbeddingsCosines()
    {
        var v = await Embeddings("query text", "first passage", "second passage");

        var (status, body) = await HttpJson.PostAsync(fixture.Http, "/score", new JsonObject
        {
            ["model"] = "base", ["text_1"] = "query text", ["text_2"] = new JsonArray("first passage", "second passage"),
        });
        var (pairsStatus, pairs) = await HttpJson.PostAsync(fixture.Http, "/v1/score", new JsonObject
        {
            ["model"] = "base", ["text_1"] = new JsonArray("first passage", "query text"), ["text_2"] = new JsonArray("second passage", "first passage"),
        });

        Assert.True(status == 200, body.ToJsonString());
        Assert.True(pairsStatus == 200, pairs.ToJsonString());
        Assert.Equal(Cosine(v[0], v[1]), (double)body["data"]![0]!["score"]!, 5);
        Assert.Equal(Cosine(v[0], v[2]), (double)body["data"]![1]!["score"]!, 5);
        Assert.Equal(Cosine(v[1], v[2]), (double)pairs["data"]![0]!["score"]!, 5);
        Assert.Equal(Cosine(v[0], v[1]), (double)pairs["data"]![1]!["score"]!, 5);
        Assert.Equal("score", (string)body["data"]![0]!["object"]!);
    }

    [Fact]
    public async Task Rerank_Documents_MostRelevantFirstTopN()
    {
        string[] documents = ["unrelated words here", "the query itself", "another passage"];
        var v = await Embeddings(["the query itself", .. documents]);

        var (status, body) = await HttpJson.PostAsync(fixture.Http, "/v1/rerank", new JsonObject
        {
            ["model"] = "base", ["query"] = "the query itself", ["documents"] = new JsonArray([.. documents.Select(d => (JsonNode)d)]), ["top_n"] = 2,
        });

        Assert.True(status == 200, body.ToJsonString());
        var results = body["results"]!.AsArray();
        Assert.Equal(2, results.Count);
        Assert.Equal(1, (int)results[0]!["index"]!);                      // the document equal to the query
        Assert.Equal(1.0, (double)results[0]!["relevance_score"]!, 4);
        Assert.Equal("the query itself", (string)results[0]!["document"]!["text"]!);
        var expected = Enumerable.Range(0, 3).OrderByDescending(i => Cosine(v[0], v[i + 1])).Take(2).ToArray();
        Assert.Equal(expected, results.Select(r => (int)r!["index"]!));
        Assert.Equal(Cosine(v[0], v[expected[1] + 1]), (double)results[1]!["relevance_score"]!, 5);
    }

    [Theory]
    [InlineData("/score", """{"model": "base", "text_1": ["a", "b"], "text_2": ["c", "d", "e"]}""", "text_1")]
    [InlineData("/score", """{"model": "base", "text_1": "a", "text_2": []}""", "text_2")]
    [InlineData("/rerank", """{"model": "base", "documents": ["a"]}""", "query")]
    [InlineData("/rerank", """{"model": "base", "query": "q", "documents": "a", "top_n": 0}""", "top_n")]
    public async Task ScoreAndRerank_BadInput_400NamingTheField(string path, string request, string param)
    {
        var (status, body) = await HttpJson.PostRawAsync(fixture.Http, path, request);

        Assert.True(status == 400, body.ToJsonString());
        Assert.Equal(param, (string?)body["error"]!["param"]);
    }

    [Theory]
    [InlineData("""{"model": "base", "input": "x", "dimensions": 0}""", "dimensions", "")]
    [InlineData("""{"model": "base", "input": "x", "dimensions": 65}""", "dimensions", "")]
    [InlineData("""{"model": "base", "input": "x", "encoding_format": "int8"}""", "encoding_format", "float or base64")]
    [InlineData("""{"model": "base", "input": []}""", "input", "empty list")]
    [InlineData("""{"model": "base", "input": [[]]}""", "input", "nothing to embed")]
    [InlineData("""{"model": "base"}""", "input", "required")]
    [InlineData("""{"model": "base", "input": [1, 99999999]}""", "input", "outside the vocabulary")]
    [InlineData("""{"model": "nope", "input": "x"}""", "model", "")]
    public async Task Embeddings_BadInput_400NamingTheField(string request, string param, string problem)
    {
        var (status, body) = await HttpJson.PostRawAsync(fixture.Http, "/v1/embeddings", request);

        Assert.True(status is 400 or 404, body.ToJsonString());
        Assert.Equal(param, (string?)body["error"]!["param"]);
        Assert.Contains(problem, (string)body["error"]!["message"]!);
    }

    [Fact]
    public async Task Embeddings_InputLongerThanTheContext_400NamingInput()
    {
        var (status, body) = await Embed(new JsonObject { ["model"] = "base", ["input"] = string.Concat(Enumerable.Repeat("word ", 3000)) });

        HttpJson.AssertBadRequest(status, body, "input", "maximum context length");
    }
}
