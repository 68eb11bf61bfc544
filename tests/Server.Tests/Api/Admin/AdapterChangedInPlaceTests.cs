using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.Admin;

/// <summary>
/// Versions come from content at every load: a registered folder whose files are overwritten while the server is down
/// is a new version after the restart (its answers are the new files'), and one whose shape changed is refused.
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

    private Task<ServerProcess> Start() =>
        ServerProcess.StartAsync("--model", _model, "--dtype", "float32", "--adapter-registry", Path.Combine(_root, "registry.json"), "--cache-dir", _root);

    private static async Task<int> Load(ServerProcess server, string name, string path)
    {
        using var response = await server.Http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = name, lora_path = path });
        return (int)response.StatusCode;
    }

    private static async Task<string> Version(ServerProcess server, string id) =>
        (string)JsonNode.Parse(await server.Http.GetStringAsync($"/v1/serving/adapters/{id}"))!["version"]!;

    private static async Task<(int Status, string Text)> Complete(ServerProcess server, string model)
    {
        var (status, body) = await Json.PostAsync(server.Http, "/v1/completions", new { model, prompt = "the same prompt", max_tokens = 8, temperature = 0 });
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
}
