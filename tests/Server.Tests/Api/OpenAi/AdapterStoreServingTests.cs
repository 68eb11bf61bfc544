using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>A server with its own adapter folder: invalid adapters and slot pressure.</summary>
public sealed class AdapterStoreServingTests : IAsyncLifetime
{
    private readonly string _root = TestDirectories.Path("store");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 8 });
        string adapters = Path.Combine(_root, "adapters");
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "good-a"), model, 4, 8, ["q_proj", "v_proj"], 1);
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "good-b"), model, 8, 16, ["down_proj"], 2);
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "too-big"), model, 32, 16, ["q_proj"], 3);
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "corrupt"), model, 4, 8, ["q_proj"], 4);
        string weights = Path.Combine(adapters, "corrupt", "adapter_model.safetensors");
        using (var f = new FileStream(weights, FileMode.Open))
            f.SetLength(f.Length - 100);
        _server = await ServerProcess.StartAsync("--model", model, "--adapters", adapters, "--dtype", "float32",
            "--max-adapter-slots", "1", "--max-lora-rank", "16", "--max-sequences", "4");
    }

    private static object Greedy(string model, int maxTokens = 6) =>
        new { model, prompt = "slot pressure", max_tokens = maxTokens, temperature = 0, ignore_eos = true };

    [Theory]
    [InlineData("corrupt", "adapter_model.safetensors")]
    [InlineData("too-big", "max rank 16")]
    public async Task Completion_InvalidAdapter_422NamingTheProblemAndOthersStillServe(string adapter, string expected)
    {
        var (status, error) = await HttpJson.PostAsync(_server.Http, "/v1/completions", Greedy(adapter));
        Assert.Equal(422, status);
        Assert.Contains(expected, (string?)error["error"]!["message"]);
        Assert.Contains(adapter, (string?)error["error"]!["message"]);
        var (ok, _) = await HttpJson.PostAsync(_server.Http, "/v1/completions", Greedy("good-a"));
        Assert.Equal(200, ok);
    }

    [Fact]
    public async Task Completion_MoreAdaptersThanSlots_RequestsWaitForASlotAndAllFinish()
    {
        var one = await HttpJson.PostAsync(_server.Http, "/v1/completions", Greedy("good-a", 12));
        var two = await HttpJson.PostAsync(_server.Http, "/v1/completions", Greedy("good-b", 12));
        var concurrent = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => HttpJson.PostAsync(_server.Http, "/v1/completions", Greedy(i % 2 == 0 ? "good-a" : "good-b", 12))));
        Assert.All(concurrent, r => Assert.Equal(200, r.Status));
        for (int i = 0; i < concurrent.Length; i++)
            Assert.Equal((string?)(i % 2 == 0 ? one : two).Body["choices"]![0]!["text"], (string?)concurrent[i].Body["choices"]![0]!["text"]);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
