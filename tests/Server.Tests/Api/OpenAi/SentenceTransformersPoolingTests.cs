using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Safetensors;
using Serving.Engine.Model;
using Serving.Server.Hosting;
using Serving.Server.Tests.Support;
using static TorchSharp.torch;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// An embedding model that pools by mean (or CLS) and projects through Dense modules, as EmbeddingGemma's folder says:
/// the server's <c>/v1/embeddings</c>, with the prompt prefilled in chunks of 8 tokens, equals the same model's final
/// hidden states computed whole in-process, pooled and multiplied through the Dense weights read back from their files.
/// </summary>
public sealed class SentenceTransformersPoolingTests : IDisposable
{
    private const string Text = "the patient reports chest pain and shortness of breath after climbing two flights of stairs, "
        + "which eased after rest; no fever, no cough, and the pain does not spread to the arm or the jaw";
    private readonly string _root = TestDirectories.Path("sentence-transformers");
    private readonly string _model;
    private readonly int _hidden;

    public SentenceTransformersPoolingTests()
    {
        _model = Path.Combine(_root, "embedder");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Architecture = "Qwen3ForCausalLM", EmbeddingModel = true, Seed = 12 });
        _hidden = JsonNode.Parse(File.ReadAllText(Path.Combine(_model, "config.json")))!["hidden_size"]!.GetValue<int>();
        SentenceTransformersWriter.Write(_model, _hidden, "mean_tokens", [new(96, Bias: true, Tanh: true), new(48)], seed: 5);
    }

    /// <summary>The expected embedding: every position's final state, computed whole, pooled, then through both Dense files by hand.</summary>
    private float[] Expected(bool cls)
    {
        using var loaded = LoadedModel.Load(_model, ScalarType.Float32, CPU, 256);
        int[] prompt = loaded.Tokenizer.Encode(Text);
        using var cache = loaded.Model.CreateKvCache(1, 256);
        using var hidden = new HiddenStateCapture();
        using (loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), prompt, 0)]), cache, LogitsSelection.AllTokens, hidden: hidden))
        {
        }

        var rows = Enumerable.Range(0, prompt.Length).Select(hidden.Row).ToArray();
        double[] x = cls ? [.. rows[0].Select(v => (double)v)] : [.. Enumerable.Range(0, _hidden).Select(d => rows.Average(r => (double)r[d]))];
        x = Dense(x, "2_Dense", tanh: true);
        return [.. Dense(x, "3_Dense", tanh: false).Select(v => (float)v)];
    }

    private double[] Dense(double[] x, string folder, bool tanh)
    {
        string path = Path.Combine(_model, folder, "model.safetensors");
        byte[] bytes = File.ReadAllBytes(path);
        var file = SafetensorsFile.Parse(path, bytes);
        float[] Read(string name) => SafetensorsFloats.Read(bytes.AsSpan((int)file.Tensors[name].DataOffset, (int)file.Tensors[name].ByteLength), SafetensorsDtype.F32)!;
        float[] w = Read("linear.weight");
        float[]? b = file.Tensors.ContainsKey("linear.bias") ? Read("linear.bias") : null;
        int outputs = w.Length / x.Length;
        return [.. Enumerable.Range(0, outputs).Select(o =>
        {
            double sum = (b?[o] ?? 0) + Enumerable.Range(0, x.Length).Sum(i => w[o * x.Length + i] * x[i]);
            return tanh ? Math.Tanh(sum) : sum;
        })];
    }

    private static async Task<float[]> Embed(ServerProcess server, JsonObject? extra = null)
    {
        var body = new JsonObject { ["model"] = "embedder", ["input"] = Text, ["normalize"] = false };
        foreach (var (key, value) in extra ?? [])
            body[key] = value?.DeepClone();
        var (status, answer) = await HttpJson.PostAsync(server.Http, "/v1/embeddings", body);
        Assert.True(status == 200, answer.ToJsonString());
        return [.. answer["data"]![0]!["embedding"]!.AsArray().Select(v => (float)v!)];
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4 * Math.Max(1, Math.Abs(expected[i])), $"dimension {i}: {actual[i]} against {expected[i]}");
    }

    [Fact]
    public async Task Embeddings_MeanPoolingAndDenseModules_EqualTheWholePromptsPooledAndProjected()
    {
        await using var server = await ServerProcess.StartAsync("--model", _model, "--cache-dir", Path.Combine(_root, "mean"), "--dtype", "float32",
            "--max-num-batched-tokens", "8");
        var embedding = await Embed(server);
        AssertClose(Expected(cls: false), embedding);

        // Requests' normalize by default; Matryoshka dimensions count the last Dense module's 48 outputs.
        var normalized = await Embed(server, new JsonObject { ["normalize"] = true });
        Assert.Equal(1.0, Math.Sqrt(normalized.Sum(v => (double)v * v)), 5);
        var (status, error) = await HttpJson.PostAsync(server.Http, "/v1/embeddings", new JsonObject { ["model"] = "embedder", ["input"] = Text, ["dimensions"] = 49 });
        Assert.Equal(400, status);
        Assert.Contains("48 dimensions", error.ToJsonString());

        // A prompt pooled from every position computes it whole: a second call (its prefix cached by the first) pools the same.
        AssertClose(embedding, await Embed(server));
    }

    [Fact]
    public async Task Embeddings_PoolerConfigCls_FirstPositionsStateProjected()
    {
        await using var server = await ServerProcess.StartAsync("--model", _model, "--cache-dir", Path.Combine(_root, "cls"), "--dtype", "float32",
            "--max-num-batched-tokens", "8", "--pooler-config", """{"pooling_type": "CLS", "normalize": false}""");
        var (status, answer) = await HttpJson.PostAsync(server.Http, "/v1/embeddings", new JsonObject { ["model"] = "embedder", ["input"] = Text });
        Assert.True(status == 200, answer.ToJsonString());
        AssertClose(Expected(cls: true), [.. answer["data"]![0]!["embedding"]!.AsArray().Select(v => (float)v!)]);
    }

    [Fact]
    public async Task Start_PoolingSettingNamesNoPooling_StartUpRefusedNamingIt()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => ServerProcess.StartAsync("--model", _model, "--cache-dir", Path.Combine(_root, "bad"),
            "--Serving:Embeddings:Pooling", "Max"));
        Assert.Contains("Pooling", error.ToString());
    }

    [Theory]
    [InlineData("""{"pooling_type": "ALL"}""", "pooling_type \"ALL\" is not served")]
    [InlineData("""{"softmax": true}""", "'softmax' is not supported")]
    [InlineData("""{"normalize": 1}""", "normalize must be true or false")]
    public void ArgumentProblems_PoolerConfigNotServed_NamedWithWhy(string json, string why)
    {
        Assert.Contains(StartupArguments.ArgumentProblems(["--pooler-config", json]), p => p.Contains(why, StringComparison.Ordinal));
        Assert.Contains(StartupArguments.ArgumentProblems(["--override-pooler-config", json]), p => p.StartsWith("--override-pooler-config", StringComparison.Ordinal));
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
