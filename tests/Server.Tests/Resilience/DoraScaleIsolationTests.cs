using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// Kept DoRA scales across tenants, with API keys: two tenants register the same DoRA bytes under names of their own,
/// and each gets scales taken for its own adapter (neither reads the other's file); a tenant that replaces its adapter
/// in place with other bytes never gets the old version's scales; every file stays in the server's cache folder.
/// </summary>
public sealed class DoraScaleIsolationTests : IAsyncLifetime
{
    private const string Alice = "alice-key-0123456789", Bob = "bob-key-0123456789ab", Admin = "admin-key-0123456789";
    private readonly string _root = TestDirectories.Path("dora-isolation");
    private ServerProcess _server = null!;
    private string _model = "", _sourceA = "", _sourceB = "";

    public async Task InitializeAsync()
    {
        _model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 35 });
        _sourceA = Path.Combine(_root, "sources", "a");
        _sourceB = Path.Combine(_root, "sources", "b");
        SyntheticAdapterWriter.Write(Path.Combine(_sourceA, "dora"), _model, 4, 8, ["q_proj", "down_proj"], 5, dora: true);
        SyntheticAdapterWriter.Write(Path.Combine(_sourceB, "dora"), _model, 4, 8, ["q_proj", "down_proj"], 5, dora: true);
        _server = await ServerProcess.StartAsync(["--model", _model, "--dtype", "float32", "--cache-dir", Path.Combine(_root, "cache"),
            "--adapter-registry", Path.Combine(_root, "registry.json"),
            .. ApiKeyArguments.For(Admin, (Alice, "a", _sourceA), (Bob, "b", _sourceB))]);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private Task<(int Status, string Body)> Send(string key, string path, object body) => HttpJson.PostWithKeyAsync(_server.Http, key, path, body);

    private async Task<int[]> Greedy(string key, string model)
    {
        var (status, body) = await Send(key, "/v1/completions", new { model, prompt = "isolated scales", max_tokens = 8, temperature = 0, ignore_eos = true, return_token_ids = true });
        Assert.True(status == 200, body);
        return [.. JsonNode.Parse(body)!["choices"]![0]!["token_ids"]!.AsArray().Select(t => (int)t!)];
    }

    private async Task<int> Preparations(string tier)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Admin);
        using var response = await _server.Http.SendAsync(request);
        return AdapterLoadCounts.Of(await response.EnsureSuccessStatusCode().Content.ReadAsStringAsync(), tier);
    }

    private string[] ScaleFiles() => Directory.GetFiles(_root, "*.safetensors", SearchOption.AllDirectories)
        .Where(f => f.Contains("dora-scales", StringComparison.Ordinal)).ToArray();

    private async Task Register(string key, string name, string path, int scaleFiles)
    {
        var (status, body) = await Send(key, "/v1/load_lora_adapter", new { lora_name = name, lora_path = path });
        Assert.True(status == 200, body);
        Assert.True(SpinWait.SpinUntil(() => ScaleFiles().Length == scaleFiles, 30_000), $"expected {scaleFiles} kept scale files, found {ScaleFiles().Length}");
    }

    [Fact]
    public async Task Register_SameDoraBytesByTwoTenantsThenReplaced_EachTakesItsOwnScales()
    {
        await Register(Alice, "a-dora", Path.Combine(_sourceA, "dora"), 1);
        await Register(Bob, "b-dora", Path.Combine(_sourceB, "dora"), 2);
        Assert.Equal(2, await Preparations("dora_scales"));
        var bobBefore = await Greedy(Bob, "b-dora");
        Assert.Equal(bobBefore, await Greedy(Alice, "a-dora"));   // the same bytes answer alike

        // Alice replaces her adapter with other bytes under the same name: a new version, its own norms.
        SyntheticAdapterWriter.Write(Path.Combine(_sourceA, "dora2"), _model, 4, 8, ["q_proj", "down_proj"], 6, dora: true);
        await Register(Alice, "a-dora", Path.Combine(_sourceA, "dora2"), 3);
        Assert.Equal(3, await Preparations("dora_scales"));
        Assert.Equal(0, await Preparations("dora_scales_file"));
        Assert.NotEqual(bobBefore, await Greedy(Alice, "a-dora"));
        Assert.Equal(bobBefore, await Greedy(Bob, "b-dora"));
        Assert.All(ScaleFiles(), f => Assert.StartsWith(Path.Combine(_root, "cache", "dora-scales"), f, StringComparison.Ordinal));
    }
}
