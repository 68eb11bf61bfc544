using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// A Qwen3-MoE checkpoint served with an attention adapter beside the base in one batch, and an adapter of its experts
/// hot-loaded: refused with a 422 naming the tensor, the server serving on.
/// </summary>
public sealed class MixtureOfExpertsServingTests : IAsyncLifetime
{
    private const string Model = "qwen3-moe-synthetic";
    private readonly string _root = TestDirectories.Path("moe-serving");
    private ServerProcess _server = null!;
    private string _model = null!;

    public async Task InitializeAsync()
    {
        _model = Path.Combine(_root, Model);
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Architecture = "Qwen3MoeForCausalLM", Seed = 107 });
        string adapters = Path.Combine(_root, "adapters");
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "attention"), _model, 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj"], 9);
        _server = await ServerProcess.StartAsync("--model", _model, "--adapters", adapters, "--dtype", "float32", "--max-context", "256");
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
            ["model"] = model, ["prompt"] = "The experts of this layer", ["max_tokens"] = 16, ["temperature"] = 0, ["ignore_eos"] = true,
            ["return_token_ids"] = true,
        });
        Assert.True(status == 200, answer.ToJsonString());
        return answer["choices"]![0]!["token_ids"]!.ToJsonString();
    }

    [Fact]
    public async Task Completions_AttentionAdapterBesideBaseInOneBatch_SameTokensAsAlone()
    {
        string baseAlone = await CompleteAsync(Model), adapterAlone = await CompleteAsync("attention");
        var together = await Task.WhenAll(CompleteAsync("attention"), CompleteAsync(Model), CompleteAsync("attention"), CompleteAsync(Model));

        Assert.NotEqual(baseAlone, adapterAlone);
        Assert.Equal([adapterAlone, baseAlone, adapterAlone, baseAlone], together);
    }

    [Fact]
    public async Task LoadAdapter_MlpAdapterOfTheMoeModel_422NamingTheTensor()
    {
        string dir = Path.Combine(_root, "uploads", "mlp");
        SyntheticAdapterWriter.Write(dir, _model, 8, 16, ["q_proj", "gate_proj"], 9);

        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/load_lora_adapter", new JsonObject { ["lora_name"] = "mlp", ["lora_path"] = dir });

        Assert.Equal(422, status);
        Assert.Contains("mlp.gate_proj", answer.ToJsonString());
        Assert.Contains("mixture-of-experts", answer.ToJsonString());
        Assert.NotEqual("", await CompleteAsync(Model));
    }
}
