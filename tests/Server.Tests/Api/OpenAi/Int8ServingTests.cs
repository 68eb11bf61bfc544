using Serving.Authoring.Synthetic;
using Serving.AdapterStore.Peft;
using Serving.Contracts.Generation;
using Serving.Engine.Generation;
using Serving.Engine.Model;
using Serving.Engine.Quantization;
using Serving.Server.Tests.Support;
using static TorchSharp.torch;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// <c>--quantization int8</c> through the real server: reported in <c>/v1/models</c> and the metrics, a LoRA adapter on the
/// int8 base answers as the engine does in-process on the same int8 model, base and adapter rows batch together, and
/// int8 on a CUDA device or an unknown quantization is refused at start-up naming the problem.
/// </summary>
public sealed class Int8ServingTests : IAsyncLifetime
{
    private const string Prompt = "Quantized weights still serve adapters";
    private readonly string _root = TestDirectories.Path("int8-serving");
    private string _model = "", _adapters = "";
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        _model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 41 });
        _adapters = Path.Combine(_root, "adapters");
        SyntheticAdapterWriter.Write(Path.Combine(_adapters, "lora-a"), _model, 8, 16, SyntheticAdapterWriter.AllTargets, 5);
        _server = await ServerProcess.StartAsync("--model", _model, "--adapters", _adapters, "--dtype", "float32", "--quantization", "int8", "--max-sequences", "4");
    }

    private async Task<int[]> Greedy(string model)
    {
        var (status, body) = await HttpJson.PostAsync(_server.Http, "/v1/completions",
            new { model, prompt = Prompt, max_tokens = 10, temperature = 0, ignore_eos = true, return_token_ids = true });
        Assert.True(status == 200, body.ToJsonString());
        return [.. body["choices"]![0]!["token_ids"]!.AsArray().Select(t => (int)t!)];
    }

    [Fact]
    public async Task Models_Int8Server_ReportsTheQuantizationInModelsAndMetrics()
    {
        var body = System.Text.Json.Nodes.JsonNode.Parse(await _server.Http.GetStringAsync("/v1/models"))!;
        Assert.Equal("int8", (string?)body["data"]![0]!["quantization"]);

        string metrics = await _server.Http.GetStringAsync("/metrics");
        Assert.Contains("quantization=\"int8\"", metrics, StringComparison.Ordinal);
        Assert.Contains("serving_model_weight_bytes", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Completion_AdapterOnTheInt8Base_EqualsTheEngineInProcessAndBatchesWithBase()
    {
        var together = await Task.WhenAll(Greedy("lora-a"), Greedy("base"));
        var adapter = await Greedy("lora-a");
        Assert.Equal(adapter, together[0]);
        Assert.NotEqual(together[1], adapter);

        using var loaded = LoadedModel.Load(_model, ScalarType.Float32, CPU, 256, quantization: WeightQuantization.Int8);
        var arena = loaded.Model.EnableAdapters(1, 64);
        arena.Load(0, PeftAdapterReader.Read(Path.Combine(_adapters, "lora-a"), "lora-a", loaded.Config, 64));
        using var cache = loaded.Model.CreateKvCache(1, 64);
        var stepper = new GenerationStepper(loaded.Model, cache);
        var sequence = new SequenceState(loaded.Tokenizer.Encode(Prompt), new SamplingParams { Temperature = 0, MaxTokens = 10, IgnoreEos = true },
            loaded.Tokenizer, loaded.EosTokenIds, [(0, 1f)]);
        for (int cached = 0; !sequence.IsFinished; cached = sequence.TotalTokens - 1)
            stepper.Run([new StepRow(sequence, cached, sequence.TotalTokens - cached, cache.Partition(0))]);
        Assert.Equal(sequence.GeneratedTokens, adapter);
    }

    [Fact]
    public async Task Start_Int8OnCuda_FailsNamingTheDevice()
    {
        var ex = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() =>
            ServerProcess.StartAsync("--model", _model, "--quantization", "int8", "--device", "cuda"));
        Assert.Contains("CPU only", ex.Message, StringComparison.Ordinal);
        Assert.Contains("'cuda'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_UnknownQuantization_FailsListingTheKnownOnes()
    {
        var ex = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() =>
            ServerProcess.StartAsync("--model", _model, "--quantization", "int4"));
        Assert.Contains("'int4' is not supported (expected one of none, int8, mxfp4)", ex.Message, StringComparison.Ordinal);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
