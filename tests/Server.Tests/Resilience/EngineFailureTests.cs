using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Serving.Authoring.Synthetic;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Runtime.Hosting;
using Serving.Server.Hosting;
using Serving.Server.Tests.Support;
using Serving.V1;
using static TorchSharp.torch;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// A request the engine itself fails (not bad input: a fault inside a forward pass, here a LoRA kernel that throws) ends
/// with a server-fault status that names the cause, on every API, and the server goes on serving.
/// </summary>
public sealed class EngineFailureTests : IAsyncLifetime
{
    private readonly string _root = TestDirectories.Path("engine-failure");
    private readonly CapturedLogs _logs = new();
    private ServerProcess _server = null!;
    private FailingLoraKernel _kernel = null!;
    private string _baseModel = "";

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 37 });
        SyntheticAdapterWriter.Write(Path.Combine(_root, "adapters", "faulty"), model, 4, 8, ["q_proj"], 5);
        // The server's own kernel behind a switch, handed to the model as it loads: kernels are chosen once, at load.
        _kernel = new FailingLoraKernel(new CpuLoraKernel());
        _server = await ServerProcess.StartAsync(builder =>
        {
            _logs.AddTo(builder);
            builder.Services.AddSingleton(new KernelOptions { Lora = _kernel });
        }, "--model", model, "--adapters", Path.Combine(_root, "adapters"), "--dtype", "float32");
        _baseModel = _server.Services.GetRequiredService<ModelHost>().ModelId;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    private static object Greedy(string model, int maxTokens = 6, bool stream = false) =>
        new { model, prompt = "a fault in the engine", max_tokens = maxTokens, temperature = 0, ignore_eos = true, stream };

    [Fact]
    public async Task Completion_EngineFaultsOnTheRequest_500NamingTheCauseAndTheServerServesOn()
    {
        _kernel.FailAfter(0);
        var (status, error) = await HttpJson.PostAsync(_server.Http, "/v1/completions", Greedy("faulty"));

        Assert.Equal(500, status);
        Assert.Contains("the engine failed this request: injected LoRA kernel fault", (string?)error["error"]!["message"], StringComparison.Ordinal);
        Assert.Contains(_logs.AtLeast(Microsoft.Extensions.Logging.LogLevel.Error), e => e.Message.StartsWith("Forward step of", StringComparison.Ordinal));
        var (ok, _) = await HttpJson.PostAsync(_server.Http, "/v1/completions", Greedy(_baseModel));
        Assert.Equal(200, ok);
        _kernel.FailAfter(int.MaxValue);
        var (recovered, _) = await HttpJson.PostAsync(_server.Http, "/v1/completions", Greedy("faulty"));
        Assert.Equal(200, recovered);
    }

    [Fact]
    public async Task Generate_EngineFaultsOnTheRequest_InternalNamingTheCause()
    {
        _kernel.FailAfter(0);
        using var channel = GrpcChannel.ForAddress(_server.Address);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await new V1.Generation.GenerationClient(channel).GenerateAsync(
            new GenerateRequest { Model = "faulty", Prompt = "a fault in the engine", MaxTokens = 4, Temperature = 0, IgnoreEos = true }));

        Assert.Equal(StatusCode.Internal, ex.StatusCode);
        Assert.Contains("injected LoRA kernel fault", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CompletionStream_EngineFaultsMidStream_EndsWithAnErrorEventThenDone()
    {
        // The fault must come after the first token and not depend on how fast this client reads: a one-token request
        // counts the kernel calls of a prefill, and the streamed request fails on the first call after its own prefill.
        var (calibrated, _) = await HttpJson.PostAsync(_server.Http, "/v1/completions", Greedy("faulty", maxTokens: 1));
        Assert.Equal(200, calibrated);
        int prefillCalls = _kernel.Calls;
        Assert.True(prefillCalls > 0);
        _kernel.FailAfter(prefillCalls);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(Greedy("faulty", 40, stream: true)) };
        using var response = await _server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<string>();
        while (await reader.ReadLineAsync() is string line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
                events.Add(line["data: ".Length..]);
        }

        Assert.True(events.Count >= 3, string.Join("\n", events));
        Assert.NotNull(JsonNode.Parse(events[0])!["choices"]);
        var error = JsonNode.Parse(events[^2])!["error"];
        Assert.True(error is not null, string.Join("\n", events));
        Assert.Contains("the engine failed this request: injected LoRA kernel fault", (string?)error["message"], StringComparison.Ordinal);
        Assert.Equal("[DONE]", events[^1]);
    }

    /// <summary>The server's own kernel, or an exception once an armed count of calls has passed.</summary>
    private sealed class FailingLoraKernel(ILoraKernel inner) : ILoraKernel
    {
        private int _calls;
        private int _failAfter = int.MaxValue;

        public string Name => inner.Name;

        /// <summary>Calls so far (counted from the last <see cref="FailAfter"/>).</summary>
        public int Calls => Volatile.Read(ref _calls);

        /// <summary>Lets <paramref name="calls"/> more calls through, then fails every call (0: fail from now on;
        /// <see cref="int.MaxValue"/>: stop failing).</summary>
        public void FailAfter(int calls)
        {
            Volatile.Write(ref _calls, 0);
            Volatile.Write(ref _failAfter, calls);
        }

        public void Apply(Tensor x, Tensor y, int outputOffset, IReadOnlyList<LoraModuleArena> modules, LoraBatchMapping mapping)
        {
            if (Interlocked.Increment(ref _calls) > Volatile.Read(ref _failAfter))
                throw new InvalidOperationException("injected LoRA kernel fault");
            inner.Apply(x, y, outputOffset, modules, mapping);
        }
    }
}
