using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Tiers;
using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Lora;

namespace Serving.AdapterStore.Tests.Tiers;

public sealed class HostAdapterCacheTests
{
    private static AdapterRecord Record(string id, string version = "v1") => new(AdapterId.Parse(id), "/x/" + id, version, DateTimeOffset.UnixEpoch);

    private static AdapterVersionKey Key(string id) => new(AdapterId.Parse(id), "v1");

    /// <summary>An adapter of exactly <paramref name="floats"/> parameters (4 bytes each).</summary>
    private static LoraAdapterWeights Weights(string name, int floats) =>
        new(name, [new LoraModuleWeights(0, LoraTarget.Q, 1, 1f, new float[floats / 2], new float[floats / 2])]);

    [Fact]
    public async Task GetOrLoad_HundredConcurrentRequestsForColdAdapter_ReadOnce()
    {
        int reads = 0;
        var gate = new TaskCompletionSource();
        var cache = new HostAdapterCache(1 << 20, r =>
        {
            Interlocked.Increment(ref reads);
            gate.Task.Wait();
            return Weights(r.Id.Value, 100);
        });
        var tasks = Enumerable.Range(0, 100).AsParallel().Select(_ => cache.GetOrLoad(Record("cold"))).ToArray();
        gate.SetResult();
        var results = await Task.WhenAll(tasks);
        Assert.Equal(1, reads);
        Assert.All(results, w => Assert.Same(results[0], w));
        Assert.Equal(1, cache.Misses);
        Assert.Equal(99, cache.Hits);
    }

    private sealed class ManualTime : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 11, 24, 0, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public async Task GetOrLoad_FailedRead_ReportedToWaitersThenRetriedAfterTtl()
    {
        int reads = 0;
        var time = new ManualTime();
        var cache = new HostAdapterCache(1 << 20, r => ++reads == 1 ? throw new InvalidDataException("broken") : Weights(r.Id.Value, 10), time);
        await Assert.ThrowsAsync<InvalidDataException>(() => cache.GetOrLoad(Record("flaky")));
        Assert.True(SpinWait.SpinUntil(() => cache.GetOrLoad(Record("flaky")).IsFaulted && reads == 1, 5000));
        time.Now += HostAdapterCache.FailureTtl + TimeSpan.FromSeconds(1);
        Assert.Equal(10, (await cache.GetOrLoad(Record("flaky"))).ParameterCount);
        Assert.Equal(2, reads);
    }

    [Fact]
    public async Task GetOrLoad_ColdRead_HeldAndCountedWhenTheAwaiterResumes()
    {
        var cache = new HostAdapterCache(1 << 20, r => Weights(r.Id.Value, 100));

        for (int i = 0; i < 50; i++)
        {
            var record = Record("a" + i);
            await cache.GetOrLoad(record);

            // No waiting: the read's task completes only once its weights are filed.
            Assert.True(cache.Holds(new AdapterVersionKey(record.Id, record.Version)), $"a{i} not held");
            Assert.Equal(400L * (i + 1), cache.Bytes);
        }
    }

    [Fact]
    public async Task GetOrLoad_OverBudget_EvictsLeastRecentlyUsed()
    {
        var cache = new HostAdapterCache(1000, r => Weights(r.Id.Value, 100));   // 400 bytes each: two fit
        await cache.GetOrLoad(Record("a"));
        await cache.GetOrLoad(Record("b"));
        Assert.True(SpinWait.SpinUntil(() => cache.Bytes == 800, 5000));
        await cache.GetOrLoad(Record("a"));                                       // a is now more recent than b
        await cache.GetOrLoad(Record("c"));
        Assert.Equal(1, cache.Evictions);                                         // counted as the room was made, not later
        Assert.Equal(800, cache.Bytes);
        Assert.Equal((true, false, true), (cache.Holds(Key("a")), cache.Holds(Key("b")), cache.Holds(Key("c"))));
        int missesBefore = cache.Misses;
        await cache.GetOrLoad(Record("a"));
        Assert.Equal(missesBefore, cache.Misses);
    }

    [Fact]
    public async Task GetOrLoad_LargerThanTheBudget_ServedNotHeldAndCountedAsEvicted()
    {
        var cache = new HostAdapterCache(1000, r => Weights(r.Id.Value, r.Id.Value == "big" ? 300 : 100));   // 1,200 and 400 bytes
        await cache.GetOrLoad(Record("a"));
        Assert.Equal(300, (await cache.GetOrLoad(Record("big"))).ParameterCount);
        Assert.Equal(2, cache.Evictions);                                          // a, to make room, and big itself
        Assert.Equal(0, cache.Bytes);
        Assert.False(cache.Holds(Key("big")));
    }

    [Fact]
    public async Task GetOrLoad_NewVersion_IsASeparateEntry()
    {
        int reads = 0;
        var cache = new HostAdapterCache(1 << 20, r => { reads++; return Weights(r.Version, 10); });
        Assert.Equal("v1", (await cache.GetOrLoad(Record("a", "v1"))).Name);
        Assert.Equal("v2", (await cache.GetOrLoad(Record("a", "v2"))).Name);
        Assert.Equal(2, reads);
    }
}
