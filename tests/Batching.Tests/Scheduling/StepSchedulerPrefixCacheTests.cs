using Serving.Batching.Scheduling;

namespace Serving.Batching.Tests.Scheduling;

/// <summary>
/// Prefix caching in the scheduler, on the invariant-checking fake engine (which also checks that every reused block holds
/// exactly the reusing prompt's prefix, and that no cached block is ever written). Block size 16 throughout.
/// </summary>
public sealed class StepSchedulerPrefixCacheTests
{
    private static int[] Tokens(int count, int seed) => [.. Enumerable.Range(0, count).Select(i => 1 + (seed * 7919 + i * 31) % 5000)];

    private static int[] Shared(int[] prefix, int length, int seed) => [.. prefix.Take(length), .. Tokens(40, seed)];

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 0)]
    [InlineData(15, 0)]
    [InlineData(16, 16)]
    [InlineData(17, 16)]
    [InlineData(47, 32)]
    [InlineData(300, 288)]
    public void PlanStep_PromptSharesAPrefixWithAnEndedRequest_ReusesItsFullBlocks(int shared, int expectedCached)
    {
        var engine = new FakeEngine(maxContext: 512);
        var first = Tokens(320, seed: 1);
        engine.Submit(tokens: first);
        engine.RunUntilIdle();

        var second = engine.Submit(tokens: Shared(first, shared, seed: 2));
        engine.RunUntilIdle();

        Assert.Equal(expectedCached, engine.CachedTokens[second]);
        Assert.Equal(expectedCached, engine.Plans.SelectMany(p => p.Started).Single(s => s.Id == second).CachedTokens);
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_NextTurnHoldsTheEarlierAnswer_ReusesTheGeneratedBlocksToo()
    {
        var engine = new FakeEngine(maxContext: 512);
        var first = engine.Submit(tokens: Tokens(40, seed: 8), maxNewTokens: 40);
        engine.RunUntilIdle();
        var conversation = engine.SequenceTokens(first);                   // 40 prompt + 40 generated tokens
        Assert.Equal(80, conversation.Count);

        var next = engine.Submit(tokens: [.. conversation, .. Tokens(10, seed: 9)]);
        engine.RunUntilIdle();

        // Blocks 0–3 (64 tokens) were written in full; block 4's last position held the final token, whose KV no step wrote.
        Assert.Equal(64, engine.CachedTokens[next]);
        engine.AssertDrained();
    }

    [Fact]
    public void CompleteStep_RowFailed_EndsTheRequestAndCachesNothingOfIt()
    {
        var engine = new FakeEngine();
        var prompt = Tokens(48, seed: 10);
        engine.Submit(tokens: prompt);
        var plan = engine.Scheduler.PlanStep();
        Assert.Single(plan.Rows);

        engine.Scheduler.CompleteStep(plan, [new RowResult(EmittedToken: true, Finished: true, Failed: true)]);

        Assert.Equal(0, engine.Scheduler.Kv.CachedBlocks);
        Assert.Equal(0, engine.Scheduler.Running);
        Assert.Equal(engine.Scheduler.Kv.TotalBlocks, engine.Scheduler.Kv.FreeBlocks);
    }

    [Fact]
    public void PlanStep_SamePromptOfWholeBlocks_RecomputesTheLastBlock()
    {
        var engine = new FakeEngine();
        var prompt = Tokens(32, seed: 3);
        engine.Submit(tokens: prompt);
        engine.RunUntilIdle();

        var again = engine.Submit(tokens: prompt);
        engine.RunUntilIdle();

        Assert.Equal(16, engine.CachedTokens[again]);
    }

    [Theory]
    [InlineData("tenant-b", null, null)]
    [InlineData("", "salt-1", null)]
    [InlineData("", null, "clinical")]
    public void PlanStep_OtherTenantSaltOrAdapter_NeverHitsTheCache(string tenant, string? salt, string? adapter)
    {
        var engine = new FakeEngine();
        var prompt = Tokens(64, seed: 4);
        engine.Submit(tokens: prompt);
        engine.RunUntilIdle();

        var other = engine.Submit(tokens: prompt, tenant: tenant, salt: salt, adapter: adapter);
        engine.RunUntilIdle();

        var same = engine.Submit(tokens: prompt);
        engine.RunUntilIdle();

        Assert.Equal(0, engine.CachedTokens[other]);
        Assert.Equal(48, engine.CachedTokens[same]);                       // the first partition's blocks were there all along
    }

    [Fact]
    public void PlanStep_PrefixCachingOff_NothingIsReusedOrCached()
    {
        var engine = new FakeEngine(new BatchingOptions { PrefixCaching = false });
        var prompt = Tokens(64, seed: 5);
        engine.Submit(tokens: prompt);
        engine.RunUntilIdle();

        var again = engine.Submit(tokens: prompt);
        engine.RunUntilIdle();

        Assert.Equal(0, engine.CachedTokens[again]);
        Assert.Equal(0, engine.Scheduler.Kv.CachedBlocks);
        Assert.Equal((0, 0), (engine.Scheduler.PrefixCacheQueries, engine.Scheduler.PrefixCacheHits));
    }

    [Fact]
    public void PlanStep_PrefixWrittenByARunningRequest_SharedWhileBothRun()
    {
        // Chunked prefill of 16 tokens a step: the first request's blocks are cached as they are written.
        var engine = new FakeEngine(new BatchingOptions { MaxPrefillTokensPerStep = 16 });
        var prompt = Tokens(64, seed: 6);
        var first = engine.Submit(tokens: prompt, maxNewTokens: 40);
        engine.Step();
        engine.Step();
        engine.Step();                                                     // 48 of 64 prompt tokens written

        var second = engine.Submit(tokens: prompt, maxNewTokens: 2);
        for (int i = 0; i < 4 && !engine.CachedTokens.ContainsKey(second); i++)
            engine.Step();                                                 // admitted once the prefill budget has room

        Assert.Equal(48, engine.CachedTokens[second]);
        var a = engine.Scheduler.RunningRequests.Single(r => r.Id == first);
        var b = engine.Scheduler.RunningRequests.Single(r => r.Id == second);
        Assert.Equal(a.Blocks[0].Take(3), b.Blocks[0].Take(3));
        Assert.All(a.Blocks[0].Take(3), block => Assert.Equal(2, engine.Scheduler.Kv.References(block)));
        engine.RunUntilIdle();
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_QueriesAndHits_CountPromptTokens()
    {
        var engine = new FakeEngine();
        var prompt = Tokens(40, seed: 7);
        engine.Submit(tokens: prompt);
        engine.RunUntilIdle();
        engine.Submit(tokens: prompt);
        engine.RunUntilIdle();

        Assert.Equal(80, engine.Scheduler.PrefixCacheQueries);
        Assert.Equal(32, engine.Scheduler.PrefixCacheHits);
    }

    [Fact]
    public void PlanStep_CacheHoldsEveryFreeBlock_NewRequestsTakeThemWithoutPreempting()
    {
        // 8 sequences of 64 tokens fit exactly: whatever the cache keeps, a request that fits an empty cache fits now.
        var engine = new FakeEngine(new BatchingOptions { KvCacheTokens = 8 * 64 }, maxSequences: 8, maxContext: 64);
        for (int i = 0; i < 8; i++)
            engine.Submit(tokens: Tokens(48, seed: 100 + i), maxNewTokens: 4);
        engine.RunUntilIdle();
        Assert.Equal(24, engine.Scheduler.Kv.CachedBlocks);
        Assert.Equal(engine.Scheduler.Kv.TotalBlocks, engine.Scheduler.Kv.FreeBlocks);

        for (int i = 0; i < 8; i++)
            engine.Submit(tokens: Tokens(60, seed: 200 + i), maxNewTokens: 4);
        engine.RunUntilIdle();

        Assert.Equal(0, engine.Scheduler.Preemptions);
        Assert.All(engine.Ended.Values, c => Assert.Equal(EndCause.Completed, c));
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_TenThousandRequestsWithSharedPrefixesCancellationsAndPreemptions_EveryBlockFreeOrCachedAndUnreferenced()
    {
        var random = new Random(11);
        var engine = new FakeEngine(new BatchingOptions { MaxPrefillTokensPerStep = 64, KvCacheTokens = 512, MaxQueuedRequests = 20_000 }, maxSequences: 8, maxContext: 256);
        var prefixes = Enumerable.Range(0, 6).Select(i => Tokens(random.Next(1, 120), seed: 300 + i)).ToArray();
        var sources = new List<CancellationTokenSource>();
        for (int i = 0; i < 10_000; i++)
        {
            var prefix = prefixes[random.Next(prefixes.Length)];
            int[] prompt = [.. prefix.Take(random.Next(0, prefix.Length + 1)), .. Tokens(random.Next(1, 40), seed: 1000 + i)];
            var cancel = new CancellationTokenSource();
            sources.Add(cancel);
            engine.Submit(tokens: prompt, maxNewTokens: random.Next(1, 80), tenant: random.Next(3) == 0 ? "t2" : "", aborted: cancel.Token);
            if (random.Next(10) == 0)
                sources[random.Next(sources.Count)].Cancel();
            if (random.Next(3) == 0)
                engine.Step();
        }

        engine.RunUntilIdle(1_000_000);

        engine.AssertDrained();
        var kv = engine.Scheduler.Kv;
        Assert.Equal(kv.TotalBlocks, kv.FreeBlocks);
        Assert.All(Enumerable.Range(0, kv.TotalBlocks), b => Assert.Equal(0, kv.References(b)));
        Assert.True(engine.Scheduler.PrefixCacheHits > 0);
        Assert.True(engine.Scheduler.Preemptions > 0, "the KV budget was meant to preempt sequences holding shared blocks");
        Assert.True(kv.CachedBlocks > 0);
        foreach (var s in sources)
            s.Dispose();
    }
}
