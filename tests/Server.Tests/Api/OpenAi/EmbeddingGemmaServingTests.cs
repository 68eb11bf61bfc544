using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Safetensors;
using Serving.Engine.Model;
using Serving.Server.Tests.Support;
using static TorchSharp.torch;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// An EmbeddingGemma-shaped folder served as it ships (bidirectional Gemma 3, mean pooling, two Dense modules): each
/// input's embedding, computed whole although the prefill budget is 8 tokens, equals the same model's final states computed
/// in-process, averaged and multiplied through the Dense files; inputs together equal inputs alone; a repeated input (its
/// prefix no cache may serve: a bidirectional prefix's KV depends on what follows) the same; generation refused.
/// </summary>
public sealed class EmbeddingGemmaServingTests : IDisposable
{
    private static readonly string[] Texts =
    [
        "query: what causes chest pain after climbing stairs and how is it treated in older patients with diabetes",
        "passage: angina is chest pain from reduced blood flow to the heart muscle, often brought on by exertion",
        "short",
    ];

    private readonly string _root = TestDirectories.Path("embeddinggemma-serving");
    private readonly string _model;

    public EmbeddingGemmaServingTests()
    {
        _model = Path.Combine(_root, "embeddinggemma");
        EmbeddingGemmaCheckpoint.Write(_model, new SyntheticModelSpec { HeadDim = 32, Seed = 23 });
    }

    private float[] Expected(LoadedModel loaded, string text)
    {
        int[] prompt = loaded.Tokenizer.Encode(text);
        using var cache = loaded.Model.CreateKvCache(1, 256);
        using var hidden = new HiddenStateCapture();
        using (loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), prompt, 0)]), cache, LogitsSelection.AllTokens, hidden: hidden))
        {
        }

        var rows = Enumerable.Range(0, prompt.Length).Select(hidden.Row).ToArray();
        double[] x = [.. Enumerable.Range(0, rows[0].Length).Select(d => rows.Average(r => (double)r[d]))];
        foreach (string folder in new[] { "2_Dense", "3_Dense" })
        {
            string path = Path.Combine(_model, folder, "model.safetensors");
            byte[] bytes = File.ReadAllBytes(path);
            var t = SafetensorsFile.Parse(path, bytes).Tensors["linear.weight"];
            float[] w = SafetensorsFloats.Read(bytes.AsSpan((int)t.DataOffset, (int)t.ByteLength), t.Dtype)!;
            var input = x;
            x = [.. Enumerable.Range(0, (int)t.Shape[0]).Select(o => Enumerable.Range(0, input.Length).Sum(i => w[o * input.Length + i] * input[i]))];
        }

        double norm = Math.Sqrt(x.Sum(v => v * v));
        return [.. x.Select(v => (float)(v / norm))];
    }

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4, $"{what}, dimension {i}: {actual[i]} against {expected[i]}");
    }

    [Fact]
    public async Task Embeddings_EmbeddingGemmaFolder_WholePromptsPooledAndProjected()
    {
        await using var server = await ServerProcess.StartAsync("--model", _model, "--cache-dir", Path.Combine(_root, "cache"), "--dtype", "float32",
            "--max-num-batched-tokens", "8");
        async Task<float[][]> Embed(params string[] inputs)
        {
            var (status, body) = await HttpJson.PostAsync(server.Http, "/v1/embeddings", new JsonObject
            {
                ["model"] = "embeddinggemma", ["input"] = new JsonArray([.. inputs.Select(i => (JsonNode)i)]),
            });
            Assert.True(status == 200, body.ToJsonString());
            return [.. body["data"]!.AsArray().Select(d => d!["embedding"]!.AsArray().Select(v => (float)v!).ToArray())];
        }

        var together = await Embed(Texts);
        using (var loaded = LoadedModel.Load(_model, ScalarType.Float32, CPU, 256))
            for (int i = 0; i < Texts.Length; i++)
                AssertClose(Expected(loaded, Texts[i]), together[i], $"input {i}");
        for (int i = 0; i < Texts.Length; i++)
            AssertClose(together[i], (await Embed(Texts[i]))[0], $"input {i} alone");
        AssertClose(together[0], (await Embed(Texts[0] + " and more", Texts[0]))[1], "input 0 after a longer one sharing its prefix");

        var (generation, refusal) = await HttpJson.PostAsync(server.Http, "/v1/completions", new JsonObject { ["model"] = "embeddinggemma", ["prompt"] = "hi", ["max_tokens"] = 2 });
        Assert.Equal(400, generation);
        Assert.Contains("embedding model", refusal.ToJsonString());
    }

    /// <summary>
    /// Pooled by the last token (<c>--pooler-config</c>), a request would reuse a cached prefix if the model attended causally:
    /// a bidirectional model caches none, so an input after a longer one that shares its prefix embeds as it does alone.
    /// </summary>
    [Fact]
    public async Task Embeddings_LastTokenPoolingAfterASharedPrefix_NoPrefixReused()
    {
        await using var server = await ServerProcess.StartAsync("--model", _model, "--cache-dir", Path.Combine(_root, "last"), "--dtype", "float32",
            "--pooler-config", """{"pooling_type": "LAST"}""");
        async Task<float[]> Embed(string input)
        {
            var (status, body) = await HttpJson.PostAsync(server.Http, "/v1/embeddings", new JsonObject { ["model"] = "embeddinggemma", ["input"] = input });
            Assert.True(status == 200, body.ToJsonString());
            return [.. body["data"]![0]!["embedding"]!.AsArray().Select(v => (float)v!)];
        }

        var alone = await Embed(Texts[0]);
        await Embed(Texts[0] + " and a good deal more text after it, so that every block of the first is full");
        AssertClose(alone, await Embed(Texts[0]), "after a longer input sharing its prefix");
        Assert.Contains("vllm:prefix_cache_hits_total{model_name=\"embeddinggemma\"} 0", await server.Http.GetStringAsync("/metrics"));
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
