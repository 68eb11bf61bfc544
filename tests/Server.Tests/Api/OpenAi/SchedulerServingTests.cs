using Microsoft.Extensions.DependencyInjection;
using Serving.Authoring.Synthetic;
using Serving.Runtime.Generation;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// The scheduler through the real server and engine under pressure: 8 adapters on 4 device slots, 16 rows, and a KV budget
/// too small for every running sequence to grow, so requests wait for slots and the youngest are preempted and recomputed.
/// </summary>
public sealed class SchedulerServingTests : IAsyncLifetime
{
    private const int Adapters = 8;
    private readonly string _root = TestDirectories.Path("scheduler");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 21 });
        string adapters = Path.Combine(_root, "adapters");
        for (int i = 0; i < Adapters; i++)
            SyntheticAdapterWriter.Write(Path.Combine(adapters, $"tenant-{i}"), model, 4 << (i % 3), 16, SyntheticAdapterWriter.AllTargets, (ulong)(40 + i));
        _server = await ServerProcess.StartAsync("--model", model, "--adapters", adapters, "--dtype", "float32",
            "--max-adapter-slots", "4", "--max-lora-rank", "16", "--max-sequences", "16", "--max-context", "128", "--kv-cache-tokens", "384");
    }

    private static object Greedy(int i) =>
        new { model = $"tenant-{i % Adapters}", prompt = $"Request number {i} asks about topic {i * 7 % 13}", max_tokens = 20, temperature = 0, ignore_eos = true };

    [Fact]
    public async Task SixtyFourConcurrentGreedyRequests_EightAdaptersFourSlotsTightKv_EachEqualsItsRunAlone()
    {
        var alone = new List<string>();
        for (int i = 0; i < 64; i++)
            alone.Add(await Text(Greedy(i)));
        var worker = _server.Services.GetRequiredService<EngineWorker>();
        long preemptionsBefore = worker.Preemptions;

        var together = await Task.WhenAll(Enumerable.Range(0, 64).Select(i => Text(Greedy(i))));

        for (int i = 0; i < 64; i++)
            Assert.True(alone[i] == together[i], $"request {i} ({Greedy(i)}): alone '{alone[i]}', batched '{together[i]}'");
        Assert.True(worker.Preemptions > preemptionsBefore, "the KV budget was meant to force preemptions");
        Assert.True(SpinWait.SpinUntil(() => worker.UsedKvBlocks == 0 && worker.PinnedAdapterSlots == 0 && worker.TrackedRequests == 0, 5000));
    }

    private async Task<string> Text(object request)
    {
        var (status, body) = await Json.PostAsync(_server.Http, "/v1/completions", request);
        Assert.True(status == 200, body.ToJsonString());
        return (string)body["choices"]![0]!["text"]!;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
