using Serving.Authoring.Synthetic;
using Serving.Authoring.Training;
using Serving.Contracts.Configuration;
using Serving.Contracts.Generation;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;
using Serving.Engine.Generation;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Server.Tests.Support;
using static TorchSharp.torch;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// A PEFT DoRA adapter through the real server: its greedy tokens equal those of a model folder whose weights are the
/// merged <c>g ⊙ (W + s·B·A)</c>, computed from the adapter's files read with a plain safetensors reader; it batches with
/// base and LoRA rows; and mixtures with it are refused.
/// </summary>
public sealed class DoraServingTests : IAsyncLifetime
{
    private const string Prompt = "DoRA rescales every output row";
    private readonly string _root = TestDirectories.Path("dora-serving");
    private string _model = "";
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        _model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 31 });
        string adapters = Path.Combine(_root, "adapters");
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "dora-a"), _model, 8, 16, SyntheticAdapterWriter.AllTargets, 5, dora: true);
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "dora-rs"), _model, 4, 8, ["q_proj", "v_proj"], 6, useRsLora: true, dora: true);
        SyntheticAdapterWriter.Write(Path.Combine(adapters, "lora-b"), _model, 4, 8, ["q_proj", "v_proj"], 7);
        using (var loaded = LoadedModel.Load(_model, ScalarType.Float32, CPU, 256))
        {
            var data = Enumerable.Range(0, 12).Select(i => new TrainingExample(loaded.Tokenizer.Encode($"note {i}:"),
                loaded.Tokenizer.Encode(" stable, no change", addSpecialTokens: false))).ToList();
            new LoraTrainer(loaded, new LoraTrainingOptions
            {
                Rank = 4, Alpha = 8, Targets = ["q_proj", "v_proj", "o_proj", "down_proj"], Steps = 20, BatchSize = 4, LearningRate = 1e-2, Seed = 2, UseDora = true,
            }).Train(data, Path.Combine(adapters, "trained-dora"));
        }

        _server = await ServerProcess.StartAsync("--model", _model, "--adapters", adapters, "--dtype", "float32", "--max-sequences", "4");
    }

    private async Task<int[]> Greedy(string model, object? mix = null)
    {
        var (status, body) = await HttpJson.PostAsync(_server.Http, "/v1/completions",
            new { model, prompt = Prompt, max_tokens = 12, temperature = 0, ignore_eos = true, return_token_ids = true, adapters = mix });
        Assert.True(status == 200, body.ToJsonString());
        return [.. body["choices"]![0]!["token_ids"]!.AsArray().Select(t => (int)t!)];
    }

    [Theory]
    [InlineData("dora-a")]
    [InlineData("dora-rs")]
    [InlineData("trained-dora")]
    public async Task Completion_DoraAdapter_EqualsTheMergedModelServedWithoutAdapter(string adapter)
    {
        var served = await Greedy(adapter);
        string merged = Path.Combine(_root, "merged-" + adapter);
        MergedModelWriter.Write(_model, merged, [(ReadPlain(Path.Combine(_root, "adapters", adapter)), 1f)]);
        using var loaded = LoadedModel.Load(merged, ScalarType.Float32, CPU, 256);
        using var cache = loaded.Model.CreateKvCache(1, 64);
        var stepper = new GenerationStepper(loaded.Model, cache);
        var sequence = new SequenceState(loaded.Tokenizer.Encode(Prompt), new SamplingParams { Temperature = 0, MaxTokens = 12, IgnoreEos = true },
            loaded.Tokenizer, loaded.EosTokenIds);
        for (int cached = 0; !sequence.IsFinished; cached = sequence.TotalTokens - 1)
            stepper.Run([new StepRow(sequence, cached, sequence.TotalTokens - cached, cache.Partition(0))]);
        Assert.Equal(sequence.GeneratedTokens, served);
        Assert.NotEqual(await Greedy("base"), served);
    }

    [Fact]
    public async Task Completions_DoraAdapterRequestedAgain_NormsTakenOnceOffTheEngineLoop()
    {
        var first = await Greedy("dora-a");
        for (int i = 0; i < 2; i++)
            Assert.Equal(first, await Greedy("dora-a"));
        await Greedy("lora-b");

        // The runtime times each DoRA preparation it runs on the thread pool: one for the adapter's host copy, none for LoRA.
        Assert.Equal(1, AdapterLoadCounts.Of(await _server.Http.GetStringAsync("/metrics"), "dora_scales"));
    }

    [Fact]
    public async Task Completions_DoraLoraAndBaseTogether_EachEqualsItsRunAlone()
    {
        string[] models = ["dora-a", "lora-b", "base", "dora-rs", "dora-a"];
        var alone = new List<int[]>();
        foreach (string m in models)
            alone.Add(await Greedy(m));
        var together = await Task.WhenAll(models.Select(m => Greedy(m)));
        for (int i = 0; i < models.Length; i++)
            Assert.Equal(alone[i], together[i]);
    }

    [Theory]
    [InlineData("base", "[{\"id\":\"dora-a\",\"weight\":0.5},{\"id\":\"lora-b\",\"weight\":0.5}]")]
    [InlineData("base", "[{\"id\":\"dora-a\",\"weight\":0.5}]")]
    public async Task Completion_MixtureWithDora_400NamingDora(string model, string mix)
    {
        var (status, body) = await HttpJson.PostRawAsync(_server.Http, "/v1/completions",
            $"{{\"model\":\"{model}\",\"prompt\":\"x\",\"max_tokens\":2,\"adapters\":{mix}}}");
        Assert.Equal(400, status);
        Assert.Equal("adapters", (string?)body["error"]!["param"]);
        Assert.Contains("DoRA", (string?)body["error"]!["message"]);
        Assert.Equal(12, (await Greedy("dora-a")).Length);                // the server goes on serving it alone
    }

    /// <summary>The adapter's tensors read straight from its safetensors file (not the server's PEFT reader).</summary>
    private LoraAdapterWeights ReadPlain(string dir)
    {
        var config = ModelConfig.Load(Path.Combine(_model, "config.json"));
        var peft = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!;
        int rank = (int)peft["r"]!;
        double alpha = (double)peft["lora_alpha"]!;
        float scale = (float)((bool)peft["use_rslora"]! ? alpha / Math.Sqrt(rank) : alpha / rank);
        var file = SafetensorsFile.Open(Path.Combine(dir, "adapter_model.safetensors"));
        float[] Floats(string name)
        {
            var t = file.Tensors[name];
            var bytes = new byte[t.ByteLength];
            file.ReadInto(t, bytes);
            var values = new float[bytes.Length / 4];
            Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
            return values;
        }

        var modules = new List<LoraModuleWeights>();
        foreach (string name in file.Tensors.Keys.Where(n => n.EndsWith(".lora_A.weight", StringComparison.Ordinal)))
        {
            string prefix = name[..^".lora_A.weight".Length];
            var target = LoraTargets.Parse(prefix[(prefix.LastIndexOf('.') + 1)..])!.Value;
            int layer = int.Parse(prefix.Split('.')[4], System.Globalization.CultureInfo.InvariantCulture);
            modules.Add(new LoraModuleWeights(layer, target, rank, scale, Floats(name), Floats(prefix + ".lora_B.weight"),
                Floats(prefix + ".lora_magnitude_vector.weight")));
        }

        return new LoraAdapterWeights(Path.GetFileName(dir), modules);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
