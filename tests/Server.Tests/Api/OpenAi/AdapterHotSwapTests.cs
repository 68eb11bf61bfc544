using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>load_lora_adapter / unload_lora_adapter: validation, hot swap under a running request, persistence.</summary>
public sealed class AdapterHotSwapTests : IAsyncLifetime
{
    private readonly string _root = TestDirectories.Path("swap");
    private string _model = "", _v1 = "", _v2 = "", _registry = "";
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        _model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 12 });
        _v1 = Path.Combine(_root, "v1");
        _v2 = Path.Combine(_root, "v2");
        SyntheticAdapterWriter.Write(_v1, _model, 8, 16, SyntheticAdapterWriter.AllTargets, 1);
        SyntheticAdapterWriter.Write(_v2, _model, 8, 16, SyntheticAdapterWriter.AllTargets, 2);
        _registry = Path.Combine(_root, "registry.json");
        _server = await Start();
    }

    private Task<ServerProcess> Start() =>
        ServerProcess.StartAsync("--model", _model, "--dtype", "float32", "--adapter-registry", _registry, "--max-adapter-slots", "3");

    private async Task<(int Status, string Body)> Load(ServerProcess server, string name, string path)
    {
        using var response = await server.Http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = name, lora_path = path });
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static async Task<int[]> Greedy(ServerProcess server, string model, int maxTokens)
    {
        var (status, body) = await HttpJson.PostAsync(server.Http, "/v1/completions",
            new { model, prompt = "Hot swap", max_tokens = maxTokens, temperature = 0, ignore_eos = true, return_token_ids = true });
        Assert.True(status == 200, body.ToJsonString());
        return body["choices"]![0]!["token_ids"]!.AsArray().Select(x => (int)x!).ToArray();
    }

    [Fact]
    public async Task Load_ReplaceDuringRunningRequest_RunningFinishesOnOldVersionNewRequestsGetNew()
    {
        Assert.Equal(200, (await Load(_server, "ref-v1", _v1)).Status);
        Assert.Equal(200, (await Load(_server, "ref-v2", _v2)).Status);
        Assert.Equal(200, (await Load(_server, "swapper", _v1)).Status);
        const int tokens = 150;
        var expectedV1 = await Greedy(_server, "ref-v1", tokens);
        var expectedV2 = await Greedy(_server, "ref-v2", tokens);
        Assert.NotEqual(expectedV1, expectedV2);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new { model = "swapper", prompt = "Hot swap", max_tokens = tokens, temperature = 0, ignore_eos = true, stream = true, return_token_ids = true }),
        };
        using var response = await _server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var streamed = new List<int>();
        int beforeSwap = -1;
        while (await reader.ReadLineAsync() is string line)
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal))
                continue;
            var choice = JsonNode.Parse(line["data: ".Length..])!["choices"]![0]!;
            streamed.AddRange(choice["token_ids"]!.AsArray().Select(x => (int)x!));
            if (beforeSwap < 0 && streamed.Count >= 5)
            {
                var (status, body) = await Load(_server, "swapper", _v2);
                Assert.True(status == 200, body);
                Assert.Contains("replaced", body);
                beforeSwap = streamed.Count;
                Assert.Equal(expectedV2, await Greedy(_server, "swapper", tokens));   // a new request sees v2 at once
            }
        }

        Assert.InRange(beforeSwap, 5, tokens - 1);   // the swap really happened while the stream was running
        Assert.Equal(expectedV1, streamed);          // and the running request finished on v1
    }

    [Fact]
    public async Task Load_PersistsAcrossRestart_UnloadRemoves()
    {
        Assert.Equal(200, (await Load(_server, "kept", _v2)).Status);
        var before = await Greedy(_server, "kept", 6);
        await _server.DisposeAsync();
        _server = await Start();
        Assert.Equal(before, await Greedy(_server, "kept", 6));
        using var unload = await _server.Http.PostAsJsonAsync("/v1/unload_lora_adapter", new { lora_name = "kept" });
        Assert.Equal(200, (int)unload.StatusCode);
        var (status, _) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new { model = "kept", prompt = "x", max_tokens = 2 });
        Assert.Equal(404, status);
        using var again = await _server.Http.PostAsJsonAsync("/v1/unload_lora_adapter", new { lora_name = "kept" });
        Assert.Equal(404, (int)again.StatusCode);
    }

    [Fact]
    public async Task Load_InvalidRequests_ClearErrors()
    {
        Assert.Equal(400, (await Load(_server, "../up", _v1)).Status);
        Assert.Equal(404, (await Load(_server, "nowhere", Path.Combine(_root, "missing"))).Status);
        Assert.Equal(400, (await Load(_server, "remote", "hf://org/adapter")).Status);
        string broken = Path.Combine(_root, "broken");
        SyntheticAdapterWriter.Write(broken, _model, 4, 8, ["q_proj"], 5);
        File.WriteAllText(Path.Combine(broken, "adapter_config.json"), """{"peft_type": "LORA", "r": 4, "target_modules": ["q_proj"], "use_dora": true}""");
        var (status, body) = await Load(_server, "broken", broken);
        Assert.Equal(422, status);
        Assert.Contains("use_dora", body);
        Assert.Equal(200, (await Load(_server, "fine", _v1)).Status);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
