using Microsoft.Extensions.DependencyInjection;
using Serving.Runtime.Generation;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>The configured request time limit through the real server: late requests end with 504 and release everything.</summary>
public sealed class RequestTimeoutTests : IAsyncLifetime
{
    private readonly string _cache = TestDirectories.Path("timeout");
    private ServerProcess _server = null!;

    public async Task InitializeAsync() =>
        _server = await ServerProcess.StartAsync("--cache-dir", _cache, "--dtype", "float32", "--max-sequences", "1", "--max-context", "256",
            "--request-timeout", "0.3");

    [Fact]
    public async Task Completions_QueuedBeyondTheTimeLimit_504NamingTheLimitAndNothingLeftHeld()
    {
        // One row, six requests of 200 tokens each: 1,200 steps cannot finish within 0.3 s, so the later ones time out,
        // whether still queued or part-way through generating.
        var responses = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => HttpJson.PostAsync(_server.Http, "/v1/completions",
            new { model = "demo-all-r8", prompt = $"slow request {i}", max_tokens = 200, ignore_eos = true })));

        Assert.All(responses, r => Assert.Contains(r.Status, new[] { 200, 504 }));
        var timedOut = responses.Where(r => r.Status == 504).ToList();
        Assert.NotEmpty(timedOut);
        Assert.All(timedOut, r => Assert.Contains("time limit", (string?)r.Body["error"]!["message"]));
        var worker = _server.Services.GetRequiredService<EngineWorker>();
        Assert.True(SpinWait.SpinUntil(() => worker.Running == 0 && worker.Waiting == 0 && worker.UsedKvBlocks == 0 && worker.PinnedAdapterSlots == 0
            && worker.TrackedRequests == 0, 5000));
        var (ok, _) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new { model = "demo-all-r8", prompt = "quick", max_tokens = 2 });
        Assert.Equal(200, ok);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_cache);
    }
}
