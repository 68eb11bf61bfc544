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

    /// <summary>
    /// Prefix caching under the same pressure: prompts share a 48-token prefix per adapter, so running sequences share
    /// cached blocks while others are preempted and resume on them. Each answer equals the uncached one (a fresh
    /// <c>cache_salt</c> never hits), and the cache did serve prompt tokens.
    /// </summary>
    [Fact]
    public async Task SharedPrefixesUnderPreemption_EachEqualsItsUncachedRun()
    {
        static int[] Prompt(int i) =>
            [.. Enumerable.Range(0, 48).Select(k => 5 + (i % 4 * 37 + k * 11) % 200), .. Enumerable.Range(0, 6 + i % 5).Select(k => 7 + (i * 13 + k) % 200)];
        object Request(int i, string? salt) => salt is null
            ? new { model = $"tenant-{i % 4}", prompt = Prompt(i), max_tokens = 20, temperature = 0, ignore_eos = true }
            : new { model = $"tenant-{i % 4}", prompt = Prompt(i), max_tokens = 20, temperature = 0, ignore_eos = true, cache_salt = salt };
        var uncached = new List<string>();
        for (int i = 0; i < 48; i++)
            uncached.Add(await Text(Request(i, $"uncached-{i}")));
        var worker = _server.Services.GetRequiredService<EngineWorker>();
        long preemptionsBefore = worker.Preemptions;

        var cached = await Task.WhenAll(Enumerable.Range(0, 48).Select(i => HttpJson.PostAsync(_server.Http, "/v1/completions", Request(i, null))));

        for (int i = 0; i < 48; i++)
        {
            Assert.True(cached[i].Status == 200, cached[i].Body.ToJsonString());
            Assert.True(uncached[i] == (string)cached[i].Body["choices"]![0]!["text"]!, $"request {i}: uncached '{uncached[i]}', cached '{cached[i].Body["choices"]![0]!["text"]}'");
        }

        Assert.True(cached.Sum(c => (int)c.Body["usage"]!["prompt_tokens_details"]!["cached_tokens"]!) > 0, "no request reused a cached prefix");
        Assert.True(worker.Preemptions > preemptionsBefore, "the KV budget was meant to force preemptions");
        Assert.True(SpinWait.SpinUntil(() => worker.UsedKvBlocks == 0 && worker.PinnedAdapterSlots == 0 && worker.TrackedRequests == 0, 5000));
    }

    private async Task<string> Text(object request)
    {
        var (status, body) = await HttpJson.PostAsync(_server.Http, "/v1/completions", request);
        Assert.True(status == 200, body.ToJsonString());
        return (string)body["choices"]![0]!["text"]!;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
