using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Reflection.V1Alpha;
using Microsoft.Extensions.DependencyInjection;
using Serving.Runtime.Generation;
using Serving.Server.Tests.Support;
using Serving.V1;
using Serving.Contracts.Generation;

namespace Serving.Server.Tests.Api.Grpc;

/// <summary>The native gRPC API over h2c on the same port as REST, with reflection, health and JSON transcoding.</summary>
public sealed class GrpcServingTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>, IDisposable
{
    private readonly GrpcChannel _channel = GrpcChannel.ForAddress(fixture.Server.Address);

    private V1.Generation.GenerationClient Generation => new(_channel);
    private V1.Adapters.AdaptersClient Adapters => new(_channel);

    private static GenerateRequest Greedy(string model, string prompt = "gRPC says hello", int maxTokens = 8) =>
        new() { Model = model, Prompt = prompt, MaxTokens = maxTokens, Temperature = 0, IgnoreEos = true };

    [Fact]
    public async Task Embed_AdapterMixAndTranscoded_AsRestsEmbeddings()
    {
        var grpc = await Generation.EmbedAsync(new EmbedRequest { Model = "demo-all-r8", Inputs = { "gRPC embeds", "twice" }, Dimensions = 8 });
        var (status, rest) = await HttpJson.PostAsync(fixture.Http, "/v1/embeddings", new { model = "demo-all-r8", input = new[] { "gRPC embeds", "twice" }, dimensions = 8 });
        var mix = await Generation.EmbedAsync(new EmbedRequest
        {
            Model = "serving-demo-tiny", Adapters = { new AdapterWeight { Id = "demo-all-r8", Weight = 1 } }, Inputs = { "gRPC embeds" }, Dimensions = 8,
        });
        var (transcodedStatus, transcoded) = await HttpJson.PostAsync(fixture.Http, "/v1/serving/embed", new { model = "demo-all-r8", inputs = new[] { "twice" }, dimensions = 8 });

        Assert.Equal(200, status);
        Assert.Equal(200, transcodedStatus);
        Assert.Equal(2, grpc.Embeddings.Count);
        Assert.Equal((int)rest["usage"]!["prompt_tokens"]!, grpc.PromptTokens);
        for (int i = 0; i < 2; i++)
            AssertClose(rest["data"]![i]!["embedding"]!.AsArray().Select(v => (float)v!).ToArray(), grpc.Embeddings[i].Values);
        AssertClose(grpc.Embeddings[0].Values, mix.Embeddings[0].Values);
        AssertClose(grpc.Embeddings[1].Values, transcoded["embeddings"]![0]!["values"]!.AsArray().Select(v => (float)v!).ToArray());

        var refused = await Assert.ThrowsAsync<RpcException>(async () => await Generation.EmbedAsync(new EmbedRequest { Model = "demo-all-r8" }));
        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.Contains("inputs", refused.Status.Detail);
    }

    private static void AssertClose(IReadOnlyList<float> expected, IReadOnlyList<float> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5, $"dimension {i}: {actual[i]} against {expected[i]}");
    }

    [Fact]
    public async Task Generate_AdapterGreedy_SameTokensAsRestAndNamesTheAdapter()
    {
        var response = await Generation.GenerateAsync(Greedy("demo-all-r8"));

        var (status, rest) = await HttpJson.PostAsync(fixture.Http, "/v1/completions",
            new { model = "demo-all-r8", prompt = "gRPC says hello", max_tokens = 8, temperature = 0, ignore_eos = true, return_token_ids = true });
        Assert.Equal(200, status);
        Assert.Equal(rest["choices"]![0]!["token_ids"]!.AsArray().Select(t => (int)t!), response.TokenIds);
        Assert.Equal((string?)rest["choices"]![0]!["text"], response.Text);
        Assert.Equal("demo-all-r8", response.Model);
        Assert.Equal("demo-all-r8", Assert.Single(response.Adapters).Id);
        Assert.Equal("length", response.FinishReason);
        Assert.Equal(8, response.Usage.CompletionTokens);
    }

    [Fact]
    public async Task Generate_LogitBiasAndPenalties_SameTokensAsRest()
    {
        var request = Greedy("demo-all-r8", maxTokens: 10);
        request.LogitBias.Add(995, 100f);
        Assert.All((await Generation.GenerateAsync(request)).TokenIds, id => Assert.Equal(995, id));

        var penalised = Greedy("demo-all-r8", maxTokens: 10);
        penalised.FrequencyPenalty = 1.5f;
        penalised.RepetitionPenalty = 1.7f;
        penalised.MinTokens = 4;
        var response = await Generation.GenerateAsync(penalised);
        var (status, rest) = await HttpJson.PostAsync(fixture.Http, "/v1/completions", new
        {
            model = "demo-all-r8", prompt = "gRPC says hello", max_tokens = 10, temperature = 0, ignore_eos = true, return_token_ids = true,
            frequency_penalty = 1.5, repetition_penalty = 1.7, min_tokens = 4,
        });
        Assert.Equal(200, status);
        Assert.Equal(rest["choices"]![0]!["token_ids"]!.AsArray().Select(t => (int)t!), response.TokenIds);

        var bad = Greedy("demo-all-r8");
        bad.PresencePenalty = 3f;
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await Generation.GenerateAsync(bad));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Contains("presence_penalty", ex.Status.Detail);
    }

    [Fact]
    public async Task GenerateStream_SameTokensAsUnaryWithFinishAndUsageLast()
    {
        var unary = await Generation.GenerateAsync(Greedy("demo-mlp-r4", maxTokens: 12));
        using var call = Generation.GenerateStream(Greedy("demo-mlp-r4", maxTokens: 12));
        var messages = new List<GenerateStreamResponse>();
        await foreach (var m in call.ResponseStream.ReadAllAsync())
            messages.Add(m);

        Assert.Equal(unary.TokenIds, messages.SelectMany(m => m.TokenIds));
        Assert.Equal(unary.Text, string.Concat(messages.Select(m => m.Text)));
        Assert.Equal("length", messages[^1].FinishReason);
        Assert.Equal(12, messages[^1].Usage.CompletionTokens);
        Assert.All(messages.SkipLast(1), m => Assert.Equal("", m.FinishReason));
        Assert.Equal("demo-mlp-r4", Assert.Single(messages[0].Adapters).Id);
    }

    [Fact]
    public async Task Generate_Auto_NamesTheRoutedAdapters()
    {
        var request = Greedy("auto", maxTokens: 3);
        request.RoutingTopK = 2;
        request.RoutingCandidates.AddRange(["demo-all-r8", "demo-mlp-r4"]);

        var response = await Generation.GenerateAsync(request);

        Assert.Equal(["demo-all-r8", "demo-mlp-r4"], response.Adapters.Select(a => a.Id).Order());
        Assert.Equal(1f, response.Adapters.Sum(a => a.Weight), 4);
    }

    [Theory]
    [InlineData("no-such-adapter", "x", 4, StatusCode.NotFound, "no-such-adapter")]
    [InlineData("serving-demo-tiny", "", 4, StatusCode.InvalidArgument, "prompt")]
    [InlineData("serving-demo-tiny", "x", 0, StatusCode.InvalidArgument, "max_tokens")]
    [InlineData("serving-demo-tiny", "x", 100_000, StatusCode.InvalidArgument, "context length")]
    public async Task Generate_BadRequest_StatusNamesTheProblem(string model, string prompt, int maxTokens, StatusCode code, string expected)
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await Generation.GenerateAsync(new GenerateRequest { Model = model, Prompt = prompt, MaxTokens = maxTokens }));

        Assert.Equal(code, ex.StatusCode);
        Assert.Contains(expected, ex.Status.Detail);
    }

    [Fact]
    public async Task Generate_DeadlinePasses_DeadlineExceededAndTheEngineLetsGo()
    {
        var worker = fixture.Server.Services.GetRequiredService<EngineWorker>();
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await Generation.GenerateAsync(Greedy("demo-all-r8", maxTokens: 240), deadline: DateTime.UtcNow.AddMilliseconds(50)));

        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
        Assert.True(SpinWait.SpinUntil(() => worker.TrackedRequests == 0 && worker.UsedKvBlocks == 0 && worker.PinnedAdapterSlots == 0, 5000));
    }

    [Fact]
    public async Task Adapters_ListGetLoadUnload_ReportVersionRankTargetsSizeAndTier()
    {
        var list = await Adapters.ListAdaptersAsync(new ListAdaptersRequest());
        var demo = list.Adapters.Single(a => a.Id == "demo-attn-r16");
        Assert.Equal((16, "serving-demo-tiny"), (demo.Rank, demo.Parent));
        Assert.Equal(["q_proj", "v_proj"], demo.TargetModules.Order());
        Assert.True(demo.SizeBytes > 0);
        Assert.Contains(demo.Tier, new[] { "device", "host", "disk" });

        await Generation.GenerateAsync(Greedy("demo-attn-r16", maxTokens: 2));
        Assert.Equal("device", (await Adapters.GetAdapterAsync(new GetAdapterRequest { Id = "demo-attn-r16" })).Tier);

        var loaded = await Adapters.LoadAdapterAsync(new LoadAdapterRequest { Id = "grpc-copy", Path = demo.Source });
        Assert.Equal(demo.Version, loaded.Version);
        Assert.Equal(demo.Version, (await Adapters.GetAdapterAsync(new GetAdapterRequest { Id = "grpc-copy" })).Version);
        var unloaded = await Adapters.UnloadAdapterAsync(new UnloadAdapterRequest { Id = "grpc-copy" });
        Assert.Equal(demo.Version, unloaded.Version);
        var gone = await Assert.ThrowsAsync<RpcException>(async () => await Adapters.GetAdapterAsync(new GetAdapterRequest { Id = "grpc-copy" }));
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task LoadAdapter_InvalidFiles_FailedPreconditionNamingTheFile()
    {
        string folder = TestDirectories.Path("grpc-bad");
        try
        {
            Directory.CreateDirectory(folder);
            File.WriteAllText(Path.Combine(folder, "adapter_config.json"), "{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"], \"peft_type\": \"LORA\"}");
            File.WriteAllBytes(Path.Combine(folder, "adapter_model.safetensors"), [1, 2, 3]);

            var ex = await Assert.ThrowsAsync<RpcException>(async () => await Adapters.LoadAdapterAsync(new LoadAdapterRequest { Id = "bad", Path = folder }));

            Assert.Equal(StatusCode.FailedPrecondition, ex.StatusCode);
            Assert.Contains("adapter_model.safetensors", ex.Status.Detail);
        }
        finally
        {
            TestDirectories.Delete(folder);
        }
    }

    [Fact]
    public async Task JsonTranscoding_GenerateAndListOverPlainHttp()
    {
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "/v1/serving/generate",
            new { model = "demo-all-r8", prompt = "gRPC says hello", maxTokens = 8, temperature = 0, ignoreEos = true });
        var unary = await Generation.GenerateAsync(Greedy("demo-all-r8"));

        Assert.Equal(200, status);
        Assert.Equal(unary.Text, (string?)body["text"]);
        using var list = await fixture.Http.GetAsync("/v1/serving/adapters");
        var adapters = JsonNode.Parse(await list.Content.ReadAsStringAsync())!["adapters"]!.AsArray();
        Assert.Contains(adapters, a => (string?)a!["id"] == "demo-all-r8");
        var (missing, error) = await HttpJson.PostAsync(fixture.Http, "/v1/serving/generate", new { model = "nope", prompt = "x" });
        Assert.Equal(404, missing);
        Assert.Contains("nope", error.ToJsonString());
    }

    [Fact]
    public async Task HealthAndReflection_StandardServicesAnswer()
    {
        var health = await new Health.HealthClient(_channel).CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);

        using var call = new ServerReflection.ServerReflectionClient(_channel).ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext());
        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains("serving.v1.Generation", services);
        Assert.Contains("serving.v1.Adapters", services);
        Assert.Contains("grpc.health.v1.Health", services);
    }

    public void Dispose() => _channel.Dispose();
}
