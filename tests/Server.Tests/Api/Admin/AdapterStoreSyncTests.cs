using System.Text.Json.Nodes;
using Amazon.S3.Model;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.Admin;

/// <summary>
/// Two replicas mirroring one shared S3-compatible adapter store (moto on loopback): an upload is served by both, a
/// new version replaces the old one on both, a deleted adapter disappears from both, and an invalid upload is skipped.
/// </summary>
public sealed class AdapterStoreSyncTests : IAsyncLifetime
{
    private readonly string _root = TestDirectories.Path("sync");
    private MotoS3Server _s3 = null!;
    private readonly List<ServerProcess> _replicas = [];
    private string _model = "";

    public async Task InitializeAsync()
    {
        _model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 17 });
        _s3 = await MotoS3Server.StartAsync();
        await _s3.Client.PutBucketAsync("shared");
        await Upload("alpha", seed: 1);
        for (int i = 0; i < 2; i++)
            _replicas.Add(await ServerProcess.StartAsync("--model", _model, "--dtype", "float32", "--cache-dir", Path.Combine(_root, $"cache-{i}"),
                "--adapter-registry", Path.Combine(_root, $"registry-{i}.json"),
                "--Serving:Adapters:SyncFrom", "s3://shared/store", "--Serving:Adapters:SyncIntervalSeconds", "1",
                "--Serving:Adapters:S3:ServiceUrl", _s3.Url, "--Serving:Adapters:S3:AccessKey", MotoS3Server.AccessKey,
                "--Serving:Adapters:S3:SecretKey", MotoS3Server.SecretKey));
    }

    private async Task Upload(string name, ulong seed, int rank = 4)
    {
        string folder = Path.Combine(_root, "uploads", $"{name}-{seed}-{rank}");
        SyntheticAdapterWriter.Write(folder, _model, rank, 8, ["q_proj", "v_proj"], seed);
        await _s3.UploadFolderAsync("shared", $"store/{name}", folder);
    }

    private static async Task<Dictionary<string, string>> Adapters(ServerProcess replica)
    {
        var models = JsonNode.Parse(await replica.Http.GetStringAsync("/v1/models"))!["data"]!.AsArray();
        return models.Where(m => m!["parent"] is not null).ToDictionary(m => (string)m!["id"]!, m => (string)m!["version"]!);
    }

    private async Task<Dictionary<string, string>[]> WaitUntil(Func<Dictionary<string, string>, bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var views = await Task.WhenAll(_replicas.Select(Adapters));
            if (views.All(condition))
                return views;
            Assert.True(DateTime.UtcNow < deadline, $"replicas did not converge: {string.Join(" / ", views.Select(v => string.Join(",", v.Select(kv => $"{kv.Key}@{kv.Value}"))))}");
            await Task.Delay(200);
        }
    }

    private async Task<string> Greedy(ServerProcess replica, string model)
    {
        var (status, body) = await HttpJson.PostAsync(replica.Http, "/v1/completions", new { model, prompt = "Shared store", max_tokens = 6, temperature = 0, ignore_eos = true });
        Assert.True(status == 200, body.ToJsonString());
        return (string)body["choices"]![0]!["text"]!;
    }

    [Fact]
    public async Task Sync_StoreChanges_ReachEveryReplica()
    {
        // Ready means the first pass ran: once /readyz says so, the adapter that was in the store at start-up is served.
        foreach (var replica in _replicas)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while ((await replica.Http.GetAsync("/readyz")).StatusCode != System.Net.HttpStatusCode.OK)
            {
                Assert.True(DateTime.UtcNow < deadline, "replica not ready after 30 s");
                await Task.Delay(50);
            }
        }

        Assert.All(await Task.WhenAll(_replicas.Select(Adapters)), v => Assert.Contains("alpha", v.Keys));
        Assert.Equal(await Greedy(_replicas[0], "alpha"), await Greedy(_replicas[1], "alpha"));

        await Upload("beta", seed: 2);
        await WaitUntil(v => v.ContainsKey("beta"));
        Assert.Equal(await Greedy(_replicas[0], "beta"), await Greedy(_replicas[1], "beta"));

        string oldVersion = (await Adapters(_replicas[0]))["alpha"];
        string oldText = await Greedy(_replicas[0], "alpha");
        await Upload("alpha", seed: 3);                                    // a new version: hot swap on both
        var views = await WaitUntil(v => v["alpha"] != oldVersion);
        Assert.Equal(views[0]["alpha"], views[1]["alpha"]);
        Assert.NotEqual(oldText, await Greedy(_replicas[1], "alpha"));

        var keys = await _s3.Client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = "shared", Prefix = "store/beta/" });
        foreach (var o in keys.S3Objects)
            await _s3.Client.DeleteObjectAsync("shared", o.Key);
        await WaitUntil(v => !v.ContainsKey("beta"));
        var (status, _) = await HttpJson.PostAsync(_replicas[0].Http, "/v1/completions", new { model = "beta", prompt = "x", max_tokens = 1 });
        Assert.Equal(404, status);
    }

    [Fact]
    public async Task Sync_InvalidUpload_SkippedOthersServed()
    {
        await Upload("too-big", seed: 4, rank: 64);                        // above the server's max LoRA rank (16)
        await Upload("gamma", seed: 5);
        await WaitUntil(v => v.ContainsKey("gamma"));
        Assert.All(await Task.WhenAll(_replicas.Select(Adapters)), v => Assert.DoesNotContain("too-big", v.Keys));
        Assert.False(string.IsNullOrEmpty(await Greedy(_replicas[0], "gamma")));
    }

    public async Task DisposeAsync()
    {
        foreach (var replica in _replicas)
            await replica.DisposeAsync();
        await _s3.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
