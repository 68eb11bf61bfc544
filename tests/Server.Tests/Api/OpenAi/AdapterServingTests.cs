using System.Text.Json.Nodes;
using Serving.AdapterStore.Peft;
using Serving.Authoring.Demo;
using Serving.Engine.Generation;
using Serving.Engine.Model;
using Serving.Server.Tests.Support;
using static TorchSharp.torch;
using Serving.Contracts.Generation;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>Requests that name adapters, through the real server on the demo model and demo adapters.</summary>
public sealed class AdapterServingTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    private const string Base = "serving-demo-tiny";
    private static readonly string[] DemoAdapters = ["demo-all-r8", "demo-attn-r16", "demo-mlp-r4"];

    private static object Greedy(string model, string prompt, int maxTokens = 8, object? adapters = null) =>
        new { model, prompt, max_tokens = maxTokens, temperature = 0, ignore_eos = true, return_token_ids = true, adapters };

    private async Task<int[]> TokenIds(object request)
    {
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "/v1/completions", request);
        Assert.True(status == 200, body.ToJsonString());
        return body["choices"]![0]!["token_ids"]!.AsArray().Select(x => (int)x!).ToArray();
    }

    [Fact]
    public async Task Models_ListsDemoAdaptersWithBaseAsParent()
    {
        var data = JsonNode.Parse(await fixture.Http.GetStringAsync("/v1/models"))!["data"]!.AsArray();
        Assert.Equal(Base, (string?)data[0]!["id"]);
        foreach (string id in DemoAdapters)
            Assert.Equal(Base, (string?)data.Single(m => (string?)m!["id"] == id)!["parent"]);
    }

    [Fact]
    public async Task Completion_WithAdapter_EqualsEngineRunWithThatAdapterAndDiffersFromBase()
    {
        const string prompt = "Adapters change the output";
        var viaServer = await TokenIds(Greedy("demo-all-r8", prompt));
        var baseline = await TokenIds(Greedy(Base, prompt));
        Assert.NotEqual(baseline, viaServer);

        string modelDir = Path.Combine(fixture.CacheDirectory, Base);
        using var loaded = LoadedModel.Load(modelDir, ScalarType.Float32, CPU, 256);
        var arena = loaded.Model.EnableAdapters(1, 64);
        arena.Load(0, PeftAdapterReader.Read(Path.Combine(fixture.CacheDirectory, Serving.Authoring.Demo.DemoAdapters.FolderName, "demo-all-r8"), "demo-all-r8", loaded.Config, 64));
        using var cache = loaded.Model.CreateKvCache(1, 64);
        var stepper = new GenerationStepper(loaded.Model, cache);
        var sequence = new SequenceState(loaded.Tokenizer.Encode(prompt), new SamplingParams { Temperature = 0, MaxTokens = 8, IgnoreEos = true },
            loaded.Tokenizer, loaded.EosTokenIds, [(0, 1f)]);
        for (int cached = 0; !sequence.IsFinished; cached = sequence.TotalTokens - 1)
            stepper.Run([new StepRow(sequence, cached, sequence.TotalTokens - cached, cache.Partition(0))]);
        Assert.Equal(sequence.GeneratedTokens, viaServer);
    }

    [Fact]
    public async Task ConcurrentRequests_DifferentAdaptersInOneBatch_EqualOneAtATime()
    {
        string[] models = [Base, .. DemoAdapters, "demo-all-r8"];
        var sequential = new List<int[]>();
        foreach (string m in models)
            sequential.Add(await TokenIds(Greedy(m, "Batch me with " + m)));
        var concurrent = await Task.WhenAll(models.Select(m => TokenIds(Greedy(m, "Batch me with " + m))));
        for (int i = 0; i < models.Length; i++)
            Assert.Equal(sequential[i], concurrent[i]);
    }

    [Fact]
    public async Task Completion_WeightedMix_RunsAndDiffersFromEitherAdapter()
    {
        const string prompt = "Mixing adapters";
        var mix = await TokenIds(Greedy(Base, prompt, adapters: new object[] { new { id = "demo-all-r8", weight = 0.5 }, new { id = "demo-mlp-r4", weight = 0.5 } }));
        var a = await TokenIds(Greedy("demo-all-r8", prompt));
        var b = await TokenIds(Greedy("demo-mlp-r4", prompt));
        Assert.Equal(8, mix.Length);
        Assert.True(!mix.SequenceEqual(a) || !mix.SequenceEqual(b));
    }

    [Theory]
    [InlineData("""{"model":"no-such-adapter","prompt":"x"}""", 404, "model")]
    [InlineData("""{"model":"serving-demo-tiny","prompt":"x","adapters":[{"id":"missing","weight":1}]}""", 404, "adapters")]
    [InlineData("""{"model":"demo-all-r8","prompt":"x","adapters":[{"id":"demo-mlp-r4"}]}""", 400, "adapters")]
    [InlineData("""{"model":"serving-demo-tiny","prompt":"x","adapters":[{"id":"demo-mlp-r4","weight":0}]}""", 400, "adapters")]
    [InlineData("""{"model":"serving-demo-tiny","prompt":"x","adapters":[{"id":"../etc","weight":1}]}""", 400, "adapters")]
    [InlineData("""{"model":"serving-demo-tiny","prompt":"x","adapters":"demo-mlp-r4"}""", 400, "adapters")]
    public async Task Completion_BadAdapterReference_ClearError(string body, int status, string param)
    {
        var (actual, error) = await HttpJson.PostRawAsync(fixture.Http, "/v1/completions", body);
        Assert.Equal(status, actual);
        Assert.Equal(param, (string?)error["error"]!["param"]);
    }
}
