using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.Admin;

/// <summary>
/// Versions come from content at every load: a registered folder whose files are overwritten while the server is down
/// is a new version after the restart (its answers are the new files'), and one whose shape changed is refused. While
/// serving, bytes read again after an in-place change are never served (nor cached as KV) under the old version.
/// </summary>
public sealed class AdapterChangedInPlaceTests : IAsyncLifetime
{
    private readonly string _root = TestDirectories.Path("in-place");
    private string _model = "", _folder = "";

    public Task InitializeAsync()
    {
        _model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 17 });
        _folder = Path.Combine(_root, "sources", "changing");
        SyntheticAdapterWriter.Write(_folder, _model, 4, 8, ["q_proj", "v_proj"], 1);
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        TestDirectories.Delete(_root);
        return Task.CompletedTask;
    }

    private Task<ServerProcess> Start(params string[] extra) =>
        ServerProcess.StartAsync(["--model", _model, "--dtype", "float32", "--adapter-registry", Path.Combine(_root, "registry.json"), "--cache-dir", _root, .. extra]);

    private static async Task<int> Load(ServerProcess server, string name, string path)
    {
        using var response = await server.Http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = name, lora_path = path });
        return (int)response.StatusCode;
    }

    private static async Task<string> Version(ServerProcess server, string id) =>
        (string)JsonNode.Parse(await server.Http.GetStringAsync($"/v1/serving/adapters/{id}"))!["version"]!;

    private static async Task<(int Status, string Text)> Complete(ServerProcess server, string model)
    {
        var (status, body) = await HttpJson.PostAsync(server.Http, "/v1/completions", new { model, prompt = "the same prompt", max_tokens = 8, temperature = 0 });
        return (status, status == 200 ? (string)body["choices"]![0]!["text"]! : body.ToJsonString());
    }

    [Fact]
    public async Task Restart_FilesOverwrittenWithTheSameShape_NewVersionServed_OtherShapeRefused()
    {
        string first;
        string firstText;
        await using (var server = await Start())
        {
            Assert.Equal(200, await Load(server, "changing", _folder));
            first = await Version(server, "changing");
            firstText = (await Complete(server, "changing")).Text;
        }

        SyntheticAdapterWriter.Write(_folder, _model, 4, 8, ["q_proj", "v_proj"], 2);
        string copy = Path.Combine(_root, "sources", "fresh");
        Directory.CreateDirectory(copy);
        foreach (string file in Directory.GetFiles(_folder))
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        await using (var server = await Start())
        {
            string second = await Version(server, "changing");
            Assert.Equal(200, await Load(server, "fresh", copy));

            Assert.NotEqual(first, second);
            Assert.Equal(await Version(server, "fresh"), second);
            var (status, text) = await Complete(server, "changing");
            Assert.Equal(200, status);
            Assert.Equal((await Complete(server, "fresh")).Text, text);
            Assert.NotEqual(firstText, text);
        }

        SyntheticAdapterWriter.Write(_folder, _model, 8, 16, ["q_proj", "v_proj"], 3);
        await using (var server = await Start())
        {
            var (status, body) = await Complete(server, "changing");
            Assert.Equal(422, status);
            Assert.Contains("changed in place", body, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Completions_FilesChangedInPlaceWhileServing_OldVersionNeverServedFromTheNewBytesNorItsCache()
    {
        // One device slot and no host tier: every switch between adapters reads the files again.
        await using var server = await Start("--max-adapter-slots", "1", "--Serving:Adapters:HostCacheBytes", "1");
        string other = Path.Combine(_root, "sources", "other");
        SyntheticAdapterWriter.Write(other, _model, 4, 8, ["q_proj", "v_proj"], 5);
        Assert.Equal(200, await Load(server, "changing", _folder));
        Assert.Equal(200, await Load(server, "other", other));
        int[] prompt = [.. Enumerable.Range(100, 40)];
        async Task<(int Status, JsonNode Body)> Send(string model) =>
            await HttpJson.PostAsync(server.Http, "/v1/completions", new { model, prompt, max_tokens = 6, temperature = 0, return_token_ids = true });
        static int Cached(JsonNode body) => (int)body["usage"]!["prompt_tokens_details"]!["cached_tokens"]!;

        var (_, warm) = await Send("changing");
        var (_, again) = await Send("changing");
        Assert.Equal(32, Cached(again));
        string before = await Version(server, "changing");

        SyntheticAdapterWriter.Write(_folder, _model, 4, 8, ["q_proj", "v_proj"], 2);
        Assert.Equal(200, (await Send("other")).Status);
        var (refused, error) = await Send("changing");
        var (status, retried) = await Send("changing");

        Assert.Equal(503, refused);
        Assert.Contains("changed in place", error.ToJsonString(), StringComparison.Ordinal);
        Assert.Equal(200, status);
        Assert.NotEqual(before, await Version(server, "changing"));
        Assert.Equal(0, Cached(retried));
        string fresh = Path.Combine(_root, "sources", "fresh-copy");
        Directory.CreateDirectory(fresh);
        foreach (string file in Directory.GetFiles(_folder))
            File.Copy(file, Path.Combine(fresh, Path.GetFileName(file)));
        Assert.Equal(200, await Load(server, "fresh-copy", fresh));
        var (_, reference) = await Send("fresh-copy");
        Assert.Equal(reference["choices"]![0]!["token_ids"]!.ToJsonString(), retried["choices"]![0]!["token_ids"]!.ToJsonString());
        Assert.NotEqual(warm["choices"]![0]!["token_ids"]!.ToJsonString(), retried["choices"]![0]!["token_ids"]!.ToJsonString());
    }
}
