using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Serving.Runtime.Generation;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>Many requests, a third cancelled mid-stream, over several adapters: afterwards nothing is left held.</summary>
public sealed class RequestLifecycleTests(DemoServerFixture fixture) : IClassFixture<DemoServerFixture>
{
    private static readonly string[] Models = ["serving-demo-tiny", "demo-all-r8", "demo-attn-r16", "demo-mlp-r4"];

    [Fact]
    public async Task ManyRequests_ThirdCancelledMidStream_KvBlocksPinsAndQueueReturnToZero()
    {
        var worker = fixture.Server.Services.GetRequiredService<EngineWorker>();
        long cancelledBefore = worker.Cancelled;
        int completed = 0, cancelled = 0;
        // HttpClient would otherwise drain the rest of a disposed response to reuse the connection: the server would never see
        // a disconnect. With no draining, disposing the response closes the connection, as a client that goes away does.
        using var disconnecting = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = fixture.Http.BaseAddress };
        await Parallel.ForEachAsync(Enumerable.Range(0, 10_000), new ParallelOptions { MaxDegreeOfParallelism = 24 }, async (i, _) =>
        {
            string model = Models[i % Models.Length];
            if (i % 3 == 0)
            {
                using var cts = new CancellationTokenSource();
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
                {
                    Content = JsonContent.Create(new { model, prompt = $"cancel me {i}", max_tokens = 64, stream = true, ignore_eos = true }),
                };
                using var response = await disconnecting.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
                await reader.ReadLineAsync(cts.Token);            // first event arrived: the request is running
                cts.Cancel();
                Interlocked.Increment(ref cancelled);
            }
            else
            {
                var (status, body) = await HttpJson.PostAsync(fixture.Http, "/v1/completions", new { model, prompt = $"finish me {i}", max_tokens = 4 });
                Assert.True(status == 200, body.ToJsonString());
                Interlocked.Increment(ref completed);
            }
        });

        Assert.Equal(6_666, completed);
        Assert.Equal(3_334, cancelled);
        // The disconnects reached the engine: nearly every cancelled stream was dropped before its 64 tokens were generated.
        Assert.True(SpinWait.SpinUntil(() => worker.Cancelled - cancelledBefore >= 3_000, 10_000), $"{worker.Cancelled - cancelledBefore} cancellations reached the engine");
        Assert.True(SpinWait.SpinUntil(() => worker.Running == 0 && worker.Waiting == 0 && worker.UsedKvBlocks == 0 && worker.PinnedAdapterSlots == 0
                && worker.TrackedRequests == 0, 10_000),
            $"running {worker.Running}, waiting {worker.Waiting}, KV blocks {worker.UsedKvBlocks}, pinned adapter slots {worker.PinnedAdapterSlots}, tracked {worker.TrackedRequests}");
    }
}
