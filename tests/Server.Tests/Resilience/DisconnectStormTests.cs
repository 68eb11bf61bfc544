using System.Net.Http.Json;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serving.Runtime.Generation;
using Serving.Server.Tests.Support;
using Serving.V1;
using Xunit.Abstractions;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// 1,000 streams (REST SSE and gRPC) cancelled at random points — while the request is still being sent, right after the
/// headers, after a random number of tokens — with finishing requests alongside: afterwards the engine holds no KV
/// blocks, adapter pins or queued requests, every finishing request succeeded, and the log has no warning or error.
/// </summary>
public sealed class DisconnectStormTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly string[] Models = ["serving-demo-tiny", "demo-all-r8", "demo-attn-r16", "demo-mlp-r4"];
    private readonly string _cache = TestDirectories.Path("storm");
    private readonly CapturedLogs _logs = new();
    private ServerProcess _server = null!;

    public async Task InitializeAsync() =>
        _server = await ServerProcess.StartAsync(_logs.AddTo, "--cache-dir", _cache, "--dtype", "float32", "--max-sequences", "8", "--max-context", "256");

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_cache);
    }

    [Fact]
    public async Task Streams_CancelledAtRandomPoints_NothingHeldAndNoErrorsLogged()
    {
        const int streams = 1_000;
        var worker = _server.Services.GetRequiredService<EngineWorker>();
        using var disconnecting = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = _server.Address };
        using var channel = GrpcChannel.ForAddress(_server.Address);
        var grpc = new V1.Generation.GenerationClient(channel);
        int cancelled = 0, finished = 0, finishedEarly = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, streams + streams / 4), new ParallelOptions { MaxDegreeOfParallelism = 24 }, async (i, _) =>
        {
            var random = new Random(i);
            string model = Models[random.Next(Models.Length)];
            if (i >= streams)
            {
                var (status, body) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new { model, prompt = $"finish {i}", max_tokens = 6 });
                Assert.True(status == 200, body.ToJsonString());
                Interlocked.Increment(ref finished);
                return;
            }

            int afterTokens = random.Next(-1, 40);   // -1: cancel before the response starts
            bool early = i % 2 == 0
                ? await CancelRestStream(disconnecting, model, i, afterTokens, random)
                : await CancelGrpcStream(grpc, model, i, afterTokens, random);
            Interlocked.Increment(ref early ? ref finishedEarly : ref cancelled);
        });

        Assert.Equal(streams / 4, finished);
        Assert.Equal(streams, cancelled + finishedEarly);
        Assert.True(SpinWait.SpinUntil(() => worker.Running == 0 && worker.Waiting == 0 && worker.UsedKvBlocks == 0 && worker.PinnedAdapterSlots == 0
                && worker.TrackedRequests == 0, 60_000),   // generous: the full suite runs beside it on 2 cores
            $"running {worker.Running}, waiting {worker.Waiting}, KV blocks {worker.UsedKvBlocks}, pinned adapter slots {worker.PinnedAdapterSlots}, tracked {worker.TrackedRequests}");
        // The start-up warnings (demo model, demo adapters) are expected.
        var unexpected = _logs.AtLeast(LogLevel.Warning, e => e.Category.StartsWith("Serving.Runtime.Hosting.ModelHost", StringComparison.Ordinal)
            || e.Category.StartsWith("Serving.Server.Hosting.DemoModelDefaults", StringComparison.Ordinal));
        output.WriteLine($"{cancelled} streams cancelled, {finishedEarly} finished before their cancel point, {worker.Cancelled} cancellations reached the engine, " +
            $"{unexpected.Count} unexpected warnings/errors");
        Assert.True(unexpected.Count == 0, string.Join("\n", unexpected.Take(10)));
        Assert.True(cancelled > streams / 2, $"only {cancelled} streams were cancelled before they finished");
    }

    /// <returns>True when the stream ended before the cancel point was reached.</returns>
    private static async Task<bool> CancelRestStream(HttpClient client, string model, int i, int afterTokens, Random random)
    {
        using var cts = new CancellationTokenSource();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new { model, prompt = $"storm {i}", max_tokens = 48, stream = true, ignore_eos = true }),
        };
        try
        {
            if (afterTokens < 0)
            {
                cts.CancelAfter(random.Next(0, 15));
                using var _ = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
                return true;
            }

            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}");
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
            int events = 0;
            while (await reader.ReadLineAsync(cts.Token) is string line)
            {
                if (line.StartsWith("data: {", StringComparison.Ordinal) && ++events > afterTokens)
                {
                    cts.Cancel();
                    return false;
                }
            }

            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task<bool> CancelGrpcStream(V1.Generation.GenerationClient client, string model, int i, int afterTokens, Random random)
    {
        using var cts = new CancellationTokenSource();
        if (afterTokens < 0)
            cts.CancelAfter(random.Next(0, 15));
        try
        {
            using var call = client.GenerateStream(new GenerateRequest { Model = model, Prompt = $"storm {i}", MaxTokens = 48, IgnoreEos = true }, cancellationToken: cts.Token);
            int messages = 0;
            while (await call.ResponseStream.MoveNext(cts.Token))
            {
                if (afterTokens >= 0 && ++messages > afterTokens)
                {
                    cts.Cancel();
                    return false;
                }
            }

            return true;
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled)
        {
            return false;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
