using Serving.Authoring.Synthetic;
using Serving.Engine.Checkpoints;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Hosting;

public sealed class ModelHostTests
{
    [Fact]
    public async Task Start_WithModelFolder_ServesItUnderItsFolderName()
    {
        string dir = Path.Combine(TestDirectories.Path("qwen"), "my-qwen");
        SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Architecture = "Qwen2ForCausalLM", Seed = 5 });
        await using var server = await ServerProcess.StartAsync("--model", dir, "--dtype", "float32");
        var (status, body) = await HttpJson.PostAsync(server.Http, "/v1/completions", new { model = "my-qwen", prompt = "hi", max_tokens = 3 });
        Assert.Equal(200, status);
        Assert.Equal(3, (int)body["usage"]!["completion_tokens"]!);
    }

    /// <summary>
    /// Qwen3 with heads · head_dim (4 · 32) wider than its hidden size (64), and Granite with its multipliers, served with
    /// an adapter on every attention projection: the adapter's rows batched beside the base's give what each gives alone.
    /// </summary>
    [Theory]
    [InlineData("Qwen3ForCausalLM", 32)]
    [InlineData("GraniteForCausalLM", null)]
    public async Task Start_WithArchitecture_ServesBaseAndAdapterBatchedAsAlone(string architecture, int? headDim)
    {
        string root = TestDirectories.Path("host-" + architecture);
        string dir = Path.Combine(root, "my-model"), adapters = Path.Combine(root, "adapters");
        SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Architecture = architecture, HeadDim = headDim, Seed = 7 });
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "attn"), dir, 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj"], 3);
        await using var server = await ServerProcess.StartAsync("--model", dir, "--adapters", adapters, "--dtype", "float32");
        async Task<string> Complete(string model) =>
            (string)(await HttpJson.PostAsync(server.Http, "/v1/completions", new { model, prompt = "hi there", max_tokens = 8, temperature = 0 })).Body["choices"]![0]!["text"]!;

        string baseAlone = await Complete("my-model"), adapterAlone = await Complete("attn");
        var together = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => Complete(i % 2 == 0 ? "my-model" : "attn")));

        Assert.NotEqual(baseAlone, adapterAlone);
        Assert.All(together.Where((_, i) => i % 2 == 0), t => Assert.Equal(baseAlone, t));
        Assert.All(together.Where((_, i) => i % 2 == 1), t => Assert.Equal(adapterAlone, t));
        TestDirectories.Delete(root);
    }

    /// <summary>An embedding model as Qwen3-Embedding ships (bare transformer tensors, last-token pooling): embeddings served, generation refused naming why.</summary>
    [Fact]
    public async Task Start_WithEmbeddingModel_EmbedsAndRefusesGeneration()
    {
        string dir = Path.Combine(TestDirectories.Path("embedding-host"), "my-embedder");
        SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Architecture = "Qwen3ForCausalLM", EmbeddingModel = true, Seed = 9 });
        await using var server = await ServerProcess.StartAsync("--model", dir, "--dtype", "float32");

        var (status, body) = await HttpJson.PostAsync(server.Http, "/v1/embeddings", new { model = "my-embedder", input = new[] { "query: hi", "passage: hello" } });
        Assert.True(status == 200, body.ToJsonString());
        Assert.All(body["data"]!.AsArray(), d => Assert.Equal(1.0, Math.Sqrt(d!["embedding"]!.AsArray().Sum(v => (double)v! * (double)v!)), 5));

        foreach (var (path, request) in new (string, object)[]
        {
            ("/v1/completions", new { model = "my-embedder", prompt = "hi", max_tokens = 3 }),
            ("/v1/chat/completions", new { model = "my-embedder", messages = new[] { new { role = "user", content = "hi" } } }),
        })
        {
            var (refused, error) = await HttpJson.PostAsync(server.Http, path, request);
            HttpJson.AssertBadRequest(refused, error, "model", "serves /v1/embeddings only");
        }
    }

    [Fact]
    public async Task Start_WithBrokenCheckpoint_FailsNamingFileAndTensor()
    {
        string dir = TestDirectories.Path("broken");
        SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Seed = 5 });
        string weights = Path.Combine(dir, "model.safetensors");
        using (var f = new FileStream(weights, FileMode.Open))
            f.SetLength(f.Length / 2);
        var ex = await Assert.ThrowsAsync<ModelLoadException>(() => ServerProcess.StartAsync("--model", dir));
        Assert.Contains(weights, ex.Message);
        Assert.Contains("model.layers.", ex.Message);
    }

    [Fact]
    public async Task Start_WithInvalidOptions_FailsListingEachProblem()
    {
        var ex = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() =>
            ServerProcess.StartAsync("--dtype", "float8", "--max-sequences", "0", "--device", "tpu"));
        Assert.Contains("float8", ex.Message);
        Assert.Contains("MaxSequences", ex.Message);
        Assert.Contains("tpu", ex.Message);
    }

    [Fact]
    public async Task Start_WithInvalidStoreTimeouts_FailsNamingEachSetting()
    {
        var ex = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() =>
            ServerProcess.StartAsync("--Serving:Adapters:S3:ResponseTimeoutSeconds", "0", "--Serving:Adapters:S3:ReadIdleTimeoutSeconds", "NaN",
                "--Serving:Adapters:S3:BreakSeconds", "-1"));
        Assert.Contains("ResponseTimeoutSeconds", ex.Message);
        Assert.Contains("ReadIdleTimeoutSeconds", ex.Message);
        Assert.Contains("BreakSeconds", ex.Message);
    }
}
