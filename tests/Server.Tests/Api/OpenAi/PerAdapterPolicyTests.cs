using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>The per-adapter baseline policy (llama.cpp-style batches) gives the same results as the continuous one, just later.</summary>
public sealed class PerAdapterPolicyTests : IAsyncLifetime
{
    private readonly string _cache = TestDirectories.Path("policy");
    private ServerProcess _server = null!;

    public async Task InitializeAsync() =>
        _server = await ServerProcess.StartAsync("--cache-dir", _cache, "--dtype", "float32", "--max-sequences", "4", "--batching-policy", "PerAdapter");

    [Fact]
    public async Task ConcurrentMixedAdapters_PerAdapterPolicy_AllCompleteWithTheirOwnResults()
    {
        string[] models = ["serving-demo-tiny", "demo-all-r8", "demo-attn-r16", "demo-mlp-r4", "demo-all-r8", "serving-demo-tiny"];
        async Task<string> Run(string m)
        {
            var (status, body) = await HttpJson.PostAsync(_server.Http, "/v1/completions",
                new { model = m, prompt = "policy " + m, max_tokens = 10, temperature = 0, ignore_eos = true });
            Assert.True(status == 200, body.ToJsonString());
            return (string)body["choices"]![0]!["text"]!;
        }

        var sequential = new List<string>();
        foreach (string m in models)
            sequential.Add(await Run(m));
        var concurrent = await Task.WhenAll(models.Select(Run));
        Assert.Equal(sequential, concurrent);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_cache);
    }
}
