using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;
using Xunit.Abstractions;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// A store that hangs instead of refusing (a stuck MinIO, a black-holed route): cold loads fail with 503 after a bounded
/// number of timed-out attempts, the breaker then opens and fails the next cold loads at once, nothing half-downloaded
/// is left in the disk cache, and the server keeps answering everything else meanwhile.
/// </summary>
public sealed class HungStoreTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const double Timeout = 0.5;                                  // the server's response and read-idle limits, s
    private readonly string _root = TestDirectories.Path("hung-store");
    private string _model = "";

    public Task InitializeAsync()
    {
        _model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 93 });
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        TestDirectories.Delete(_root);
        return Task.CompletedTask;
    }

    private Task<ServerProcess> Start(HungS3Server store) => ServerProcess.StartAsync("--model", _model, "--dtype", "float32",
        "--cache-dir", Path.Combine(_root, "cache"),
        "--Serving:Adapters:S3:ServiceUrl", store.Url, "--Serving:Adapters:S3:AccessKey", "k", "--Serving:Adapters:S3:SecretKey", "s",
        "--Serving:Adapters:S3:ResponseTimeoutSeconds", $"{Timeout}", "--Serving:Adapters:S3:ReadIdleTimeoutSeconds", $"{Timeout}",
        "--Serving:Adapters:S3:BreakSeconds", "30");

    private static async Task<(int Status, string Message, double Seconds)> Load(ServerProcess server, string name)
    {
        var clock = Stopwatch.StartNew();
        using var response = await server.Http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = name, lora_path = "s3://adapters/fleet/model" });
        string body = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, body, clock.Elapsed.TotalSeconds);
    }

    [Theory]
    [InlineData(HungS3Mode.Silent, "did not answer")]
    [InlineData(HungS3Mode.StallBody, "sent no bytes")]
    public async Task ColdLoad_StoreHangs_503AfterThreeTimedOutAttemptsThenAtOnce(HungS3Mode mode, string reason)
    {
        await using var store = new HungS3Server(mode);
        await using var server = await Start(store);

        var first = await Load(server, "cold-0");
        int attempts = store.Requests;
        var next = new List<(int Status, string Message, double Seconds)>();
        for (int i = 1; i <= 3; i++)
            next.Add(await Load(server, $"cold-{i}"));
        var (status, body) = await HttpJson.PostAsync(server.Http, "/v1/completions", new { model = "base", prompt = "still here", max_tokens = 4, temperature = 0 });
        using var metrics = await server.Http.GetAsync("/metrics");
        string scraped = await metrics.Content.ReadAsStringAsync();
        var models = await server.Http.GetFromJsonAsync<JsonObject>("/v1/models");

        output.WriteLine($"{mode}: first cold load {first.Status} in {first.Seconds * 1000:F0} ms after {attempts} attempts ({first.Message}); " +
            $"then {string.Join(", ", next.Select(n => $"{n.Status} in {n.Seconds * 1000:F0} ms"))}; store saw {store.Requests} requests");
        Assert.True(first.Status == 503, first.Message);
        Assert.Contains(reason, first.Message, StringComparison.Ordinal);
        // Three attempts timed out (the breaker below opens only after three failures); the store saw each one that got as
        // far as sending its request — on a loaded machine the first attempt's 0.5 s can pass in the S3 client's first-use
        // set-up before its request leaves (CI saw 2 requests in 2.06 s while other builds ran).
        Assert.InRange(attempts, 2, 3);
        // Upper bound: three timeouts plus the S3 client's first-use set-up (JIT, SDK configuration), which took up to ~4 s
        // more on this 2-core machine while the suite's other servers were starting; the hang this guards against took 30 s
        // (three 10 s header timeouts) or never ended (a stalled body).
        Assert.InRange(first.Seconds, 3 * Timeout, 3 * Timeout + 6);
        Assert.All(next, n => Assert.True(n.Status == 503, n.Message));
        // The open breaker kept them off the store (the request count proves it); the time bound only rules out a hang, kept
        // loose since this runs beside other tests on 2 cores.
        Assert.All(next, n => Assert.True(n.Seconds < 3, $"with the breaker open a cold load took {n.Seconds:F2} s"));
        Assert.Equal(attempts, store.Requests);
        Assert.Contains("serving_adapter_source_breaker_state{source=\"s3\",state=\"open\"} 1", scraped);
        Assert.True(status == 200, body.ToJsonString());
        Assert.DoesNotContain(models!["data"]!.AsArray(), m => ((string)m!["id"]!).StartsWith("cold-", StringComparison.Ordinal));
        string s3Cache = Path.Combine(_root, "cache", "adapter-cache", "s3");
        Assert.Empty(Directory.Exists(s3Cache) ? Directory.GetFileSystemEntries(s3Cache) : []);
    }
}
