using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// A Phi-3 checkpoint (stacked qkv_proj and gate_up_proj, longrope) served with a PEFT adapter of its stacked modules, as
/// PEFT saves one for Phi-3: hot-loaded, batched beside the base as alone.
/// </summary>
public sealed class Phi3ServingTests : IAsyncLifetime
{
    private const string Model = "phi3-synthetic";
    private readonly string _root = TestDirectories.Path("phi3-serving");
    private ServerProcess _server = null!;
    private string _model = null!;

    public async Task InitializeAsync()
    {
        _model = Path.Combine(_root, Model);
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Architecture = "Phi3ForCausalLM", Seed = 109 });
        _server = await ServerProcess.StartAsync("--model", _model, "--dtype", "float32", "--max-context", "256");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<string> CompleteAsync(string model)
    {
        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new JsonObject
        {
            ["model"] = model, ["prompt"] = "A stacked projection of queries, keys and values", ["max_tokens"] = 16, ["temperature"] = 0,
            ["ignore_eos"] = true, ["return_token_ids"] = true,
        });
        Assert.True(status == 200, answer.ToJsonString());
        return answer["choices"]![0]!["token_ids"]!.ToJsonString();
    }

    [Fact]
    public async Task Completions_StackedModuleAdapterHotLoaded_BesideTheBaseAsAlone()
    {
        string dir = Path.Combine(_root, "uploads", "phi3-notes");
        SyntheticAdapterWriter.Write(dir, _model, 8, 16, ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"], 11);
        using (var loaded = await _server.Http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = "phi3-notes", lora_path = dir }))
            Assert.True(loaded.IsSuccessStatusCode, await loaded.Content.ReadAsStringAsync());

        string baseAlone = await CompleteAsync(Model), adapterAlone = await CompleteAsync("phi3-notes");
        var together = await Task.WhenAll(CompleteAsync("phi3-notes"), CompleteAsync(Model), CompleteAsync("phi3-notes"));

        Assert.NotEqual(baseAlone, adapterAlone);
        Assert.Equal([adapterAlone, baseAlone, adapterAlone], together);
    }
}
