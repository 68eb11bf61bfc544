using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using System.Text.Json.Nodes;
using Serving.Authoring.Demo;
using Serving.Runtime.Hosting;
using Serving.Server.Tests.Support;
using Serving.Tests.Shared;

namespace Serving.Server.Tests.Hosting;

/// <summary>
/// A first start on the demo model with an empty cache, through the real server: it listens before the trained demo
/// adapters exist, answers for them with 503 and Retry-After while they train, and serves each as it is written.
/// </summary>
public sealed class FirstStartTests : IDisposable
{
    private readonly string _cache = TestDirectories.Path("first-start");

    public void Dispose() => TestDirectories.Delete(_cache);

    private static async Task<List<string>> ModelIds(ServerProcess server)
    {
        var models = JsonNode.Parse(await server.Http.GetStringAsync("/v1/models"))!;
        return [.. models["data"]!.AsArray().Select(m => (string)m!["id"]!)];
    }

    [Fact]
    public async Task Start_EmptyCache_ServesBeforeTrainingAndEachTrainedAdapterWhenReady()
    {
        var logs = new CapturedLogs();
        await using var server = await ServerProcess.StartListeningAsync(logs.AddTo, "--cache-dir", _cache, "--dtype", "float32", "--max-context", "256");
        var preparing = server.Services.GetRequiredService<ModelHost>().Preparing;

        var ids = await ModelIds(server);
        Assert.Contains("serving-demo-tiny", ids);
        Assert.All(DemoAdapters.All, a => Assert.Contains(a.Id, ids));
        var (status, body) = await HttpJson.PostAsync(server.Http, "/v1/completions", new { model = "serving-demo-tiny", prompt = "Hello", max_tokens = 2 });
        Assert.Equal(200, status);

        // The last one trained is certainly still in training now.
        using var pending = await server.Http.PostAsync("/v1/completions", JsonContent.Create(new { model = "demo-digits", prompt = "reverse 12:", max_tokens = 2 }));
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, pending.StatusCode);
        Assert.True(pending.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), "a 503 for an adapter in training carries Retry-After");
        var error = JsonNode.Parse(await pending.Content.ReadAsStringAsync())!["error"]!;
        Assert.Contains("being prepared", (string)error["message"]!, StringComparison.Ordinal);
        Assert.DoesNotContain("demo-digits", await ModelIds(server));
        var (mixStatus, _) = await HttpJson.PostAsync(server.Http, "/v1/completions",
            new { model = "serving-demo-tiny", prompt = "x", max_tokens = 1, adapters = new[] { new { id = "demo-digits", weight = 1.0 } } });
        Assert.Equal(503, mixStatus);

        // The first trained adapter is served as soon as it is written, while the others still train.
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (!(await ModelIds(server)).Contains("demo-clinical") && DateTime.UtcNow < deadline)
            await Task.Delay(250);
        Assert.Contains("demo-clinical", await ModelIds(server));
        var (clinical, _) = await HttpJson.PostAsync(server.Http, "/v1/completions", new { model = "demo-clinical", prompt = "patient reports fever", max_tokens = 2 });
        Assert.Equal(200, clinical);
        Assert.Contains(logs.Entries, e => e.Message.Contains("Training demo adapter demo-clinical: step 20/80", StringComparison.Ordinal)
            && e.Message.Contains("s left", StringComparison.Ordinal));
        Assert.Contains(logs.Entries, e => e.Message.Contains("Demo adapter demo-clinical is ready and served", StringComparison.Ordinal));
        Assert.Contains(AdapterIdOf("demo-digits"), preparing.Pending);
    }

    [Fact]
    public async Task Stop_DuringTraining_CancelsItAndTheNextStartTrainsAgainWithoutLeftOvers()
    {
        await using (var first = await ServerProcess.StartListeningAsync(null, "--cache-dir", _cache, "--dtype", "float32", "--max-context", "256"))
        {
            Assert.NotEmpty(first.Services.GetRequiredService<ModelHost>().Preparing.Pending);
        }   // stopped while the first adapter trains

        string root = Path.Combine(_cache, DemoAdapters.FolderName);
        Assert.Empty(Directory.GetDirectories(DemoAdapters.StagingParent(root)));
        Assert.Equal(DemoAdapters.Trained.Count, DemoAdapters.Missing(root).Count);
        await using var second = await ServerProcess.StartListeningAsync(null, "--cache-dir", _cache, "--dtype", "float32", "--max-context", "256");
        Assert.Equal(DemoAdapters.Trained.Select(t => t.Id).Order(StringComparer.Ordinal),
            second.Services.GetRequiredService<ModelHost>().Preparing.Pending.Select(id => id.Value));
    }

    private static Serving.Contracts.AdapterId AdapterIdOf(string id) => Serving.Contracts.AdapterId.Parse(id);
}
