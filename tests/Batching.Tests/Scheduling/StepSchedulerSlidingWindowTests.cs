using Serving.Batching.PrefixCaching;
using Serving.Batching.Scheduling;
using Serving.Contracts;
using Serving.Contracts.Configuration;

namespace Serving.Batching.Tests.Scheduling;

/// <summary>
/// KV groups with a sliding window (vLLM's hybrid KV cache manager) in the scheduler, on the invariant-checking fake engine,
/// which fails a run where a row attends to a block that no longer holds its sequence's KV, or where a block behind every
/// window is still held after a step. Four layers: two whole-context, two sliding (window 8); blocks of 4 tokens.
/// </summary>
public sealed class StepSchedulerSlidingWindowTests
{
    private const int Window = 8;
    private static readonly KvCacheGroups Hybrid = KvCacheGroups.Of([[1, 3], [0, 2]], [null, Window]);
    private static readonly KvCacheGroups Whole = KvCacheGroups.Single(4);

    private static BatchingOptions Options(int kvCacheTokens = 0, int maxPrefill = 512) =>
        new() { KvBlockSize = 4, KvCacheTokens = kvCacheTokens, MaxPrefillTokensPerStep = maxPrefill };

    private static int[] Tokens(int count, int seed) => [.. Enumerable.Range(0, count).Select(i => 1 + (seed * 7919 + i * 31) % 5000)];

    [Fact]
    public void CompleteStep_SequencePassesTheWindow_SlidingBlocksGoBackToThePool()
    {
        var engine = new FakeEngine(Options(), maxSequences: 1, maxContext: 256, kvGroups: Hybrid);
        var id = engine.Submit(prompt: 20, maxNewTokens: 100);
        int most = 0;
        while (engine.Scheduler.Running + engine.Scheduler.Waiting > 0)
        {
            engine.Step();
            if (engine.Scheduler.RunningRequests.SingleOrDefault() is { } r)
            {
                // Whole-context group: every position; sliding group: the blocks window 8 reaches from the next position.
                int expected = (r.Computed + 3) / 4 + ((r.Computed + 3) / 4 - Math.Max(0, r.Computed - Window + 1) / 4);
                Assert.Equal(expected, engine.Scheduler.Kv.UsedBlocks);
                most = Math.Max(most, engine.Scheduler.Kv.UsedBlocks);
            }
        }

        Assert.Equal(100, engine.Generated[id]);
        Assert.True(most <= 30 + 3, $"{most} blocks held at once");              // 2 × 30 without releasing
        engine.AssertDrained();
    }

    [Fact]
    public void Constructor_DefaultPool_WhatMaxSequencesHoldAtOnce()
    {
        var hybrid = new FakeEngine(Options(maxPrefill: 32), maxSequences: 4, maxContext: 256, kvGroups: Hybrid).Scheduler.Kv;
        var whole = new FakeEngine(Options(maxPrefill: 32), maxSequences: 4, maxContext: 256, kvGroups: Whole).Scheduler.Kv;

        // A block of the hybrid layout holds two layers, of the whole one four. Four decoding sequences hold 64 + 3 blocks
        // each (a window of 8 spans 3 blocks of 4), and a step's 32 prompt tokens up to 8 + 2 per sequence more.
        Assert.Equal(4 * (64 + 3) + 8 + 2 * 4, hybrid.TotalBlocks);
        Assert.Equal(4 * 64, whole.TotalBlocks);
        Assert.True(hybrid.TotalBlocks * 2 < whole.TotalBlocks * 4 * 0.6);
    }

    /// <summary>The default pool, smaller than every layer keeping every position, still runs max sequences to the max context together.</summary>
    [Fact]
    public void PlanStep_DefaultPoolMaxSequencesToTheMaxContext_NeverPreempts()
    {
        var engine = new FakeEngine(Options(maxPrefill: 32), maxSequences: 4, maxContext: 256, kvGroups: Hybrid) { DraftsPerStep = 2 };
        var ids = Enumerable.Range(0, 4).Select(i => engine.Submit(prompt: 90 + 3 * i, maxNewTokens: 256 - 90 - 3 * i)).ToList();
        int mostRunning = 0;
        while (engine.Scheduler.Running + engine.Scheduler.Waiting > 0)
        {
            engine.Step();
            mostRunning = Math.Max(mostRunning, engine.Scheduler.Running);
        }

        Assert.Equal((0, 4), (engine.Scheduler.Preemptions, mostRunning));
        engine.AssertDrained();
    }

    /// <summary>
    /// The same KV memory (512 positions of every layer) holds two sequences of 216 positions without groups; with the sliding
    /// layers' old blocks released it holds four, so none is preempted.
    /// </summary>
    [Theory]
    [InlineData(true, 0)]
    [InlineData(false, 1)]
    public void PlanStep_LongSequencesInTheSameMemory_MoreRunWithSlidingGroups(bool hybrid, int minimumPreemptions)
    {
        var engine = new FakeEngine(Options(kvCacheTokens: 512, maxPrefill: 64), maxSequences: 4, maxContext: 256, kvGroups: hybrid ? Hybrid : Whole);
        var ids = Enumerable.Range(0, 4).Select(i => engine.Submit(prompt: 16, maxNewTokens: 200)).ToList();
        int mostRunning = 0;
        while (engine.Scheduler.Running + engine.Scheduler.Waiting > 0)
        {
            engine.Step();
            mostRunning = Math.Max(mostRunning, engine.Scheduler.Running);
        }

        Assert.All(ids, id => Assert.Equal(200, engine.Generated[id]));
        Assert.True(engine.Scheduler.Preemptions >= minimumPreemptions);
        if (hybrid)
            Assert.Equal((0, 4), (engine.Scheduler.Preemptions, mostRunning));
        engine.AssertDrained();
    }

    /// <summary>Speculative drafts and chunked prefill beside long decodes: every row's window still holds its own KV.</summary>
    [Fact]
    public void RunUntilIdle_DraftsChunksAndPreemptions_EveryReadBlockStillTheSequences()
    {
        var engine = new FakeEngine(Options(kvCacheTokens: 256, maxPrefill: 24), maxSequences: 4, maxContext: 128, kvGroups: Hybrid) { DraftsPerStep = 3 };
        for (int i = 0; i < 10; i++)
            engine.Submit(prompt: 5 + 13 * i % 60, maxNewTokens: 10 + 17 * i % 50, tokens: i % 2 == 0 ? Tokens(5 + 13 * i % 60, i) : null);
        engine.RunUntilIdle();

        Assert.True(engine.DraftsAccepted > 0);
        engine.AssertDrained();
    }

    /// <summary>
    /// A prompt seen before is reused though its sliding blocks behind the window were released (and may be evicted): the hit
    /// needs the whole-context group's every block and the sliding group's window only.
    /// </summary>
    [Fact]
    public void PlanStep_SamePromptAgain_ReusesWholeGroupAndTheWindowOfTheSlidingOne()
    {
        var engine = new FakeEngine(Options(), maxSequences: 2, maxContext: 256, kvGroups: Hybrid);
        var prompt = Tokens(42, seed: 3);
        engine.Submit(tokens: prompt, maxNewTokens: 2);
        engine.RunUntilIdle();

        var again = engine.Submit(tokens: [.. prompt, 17, 18]);
        engine.Step();

        Assert.Equal(40, engine.CachedTokens[again]);
        var r = engine.Scheduler.RunningRequests.Single();
        Assert.Equal(Enumerable.Repeat(SequenceBlocks.Released, 8), r.Blocks[1].Take(8));   // position 40 reads from 33 (block 8) on
        Assert.DoesNotContain(SequenceBlocks.Released, r.Blocks[0]);
        engine.RunUntilIdle();
        engine.AssertDrained();
    }

    [Theory]
    [InlineData(new[] { 7, 8, 9 }, 10)]     // window of position 40: blocks 8 and 9 (33 … 39): cached
    [InlineData(new[] { 8 }, 0)]            // block 9 missing: position 36's window (29 … 35) needs 7 and 8; 7 missing; … none
    [InlineData(new[] { 6, 7 }, 8)]         // position 32 reads 25 … 31: blocks 6 and 7
    public void Reuse_SlidingGroupHoldsSomeBlocks_LongestPrefixItsWindowHas(int[] slidingCached, int expected)
    {
        var kv = new KvBlockAllocator(64, new KvLayout(4, [null, Window]));
        var prefixes = new PrefixCache(kv, enabled: true);
        var seed = PrefixCacheSeed.Create("m", [], "", null);
        var keys = PrefixKeyChain.Compute(seed, Tokens(44, 1), 4);
        var writer = new List<int>();
        kv.TryAllocate(10, writer);
        for (int b = 0; b < 10; b++)
            kv.Register(writer[b], keys[b], group: 0);
        var sliding = new List<int>();
        kv.TryAllocate(slidingCached.Length, sliding);
        for (int i = 0; i < slidingCached.Length; i++)
            kv.Register(sliding[i], keys[slidingCached[i]], group: 1);
        kv.Release(writer);
        kv.Release(sliding);

        var r = new ScheduledRequest(new RequestId(1), "", AdapterMix.None, 44, null, CancellationToken.None, keys) { Blocks = new SequenceBlocks(2) };
        int hit = prefixes.Reuse(r);

        Assert.Equal(expected, hit);
        Assert.Equal(hit, r.Blocks[0].Count);
        Assert.Equal(hit, r.Blocks[1].Count);
        Assert.Equal(Math.Max(0, hit * 4 - Window + 1) / 4, r.Blocks[1].Count(b => b == SequenceBlocks.Released));
        Assert.Equal(r.Blocks.Held.Count(), kv.UsedBlocks);
    }

    /// <summary>Two sliding groups: a hit one group's window allows but not the other's is shortened until both hold theirs.</summary>
    [Theory]
    [InlineData(new[] { 8, 9 }, new[] { 6, 7, 8, 9 }, 10)]   // both hold position 40's window (blocks 8, 9)
    [InlineData(new[] { 8, 9 }, new[] { 6, 7 }, 0)]          // one holds 40's only, the other 32's only: no length suits both
    [InlineData(new[] { 6, 7, 8 }, new[] { 6, 7 }, 8)]       // both hold 32's (blocks 6, 7)
    public void Reuse_TwoSlidingGroupsCachedDifferently_AHitBothHold(int[] first, int[] second, int expected)
    {
        var kv = new KvBlockAllocator(64, new KvLayout(4, [null, Window, Window]));
        var keys = PrefixKeyChain.Compute(PrefixCacheSeed.Create("m", [], "", null), Tokens(44, 1), 4);
        foreach (var (group, blocks) in new[] { (0, Enumerable.Range(0, 10).ToArray()), (1, first), (2, second) })
        {
            var table = new List<int>();
            kv.TryAllocate(blocks.Length, table);
            for (int i = 0; i < blocks.Length; i++)
                kv.Register(table[i], keys[blocks[i]], group);
            kv.Release(table);
        }

        var r = new ScheduledRequest(new RequestId(1), "", AdapterMix.None, 44, null, CancellationToken.None, keys) { Blocks = new SequenceBlocks(3) };

        Assert.Equal(expected, new PrefixCache(kv, enabled: true).Reuse(r));
        Assert.Equal(r.Blocks.Held.Count(), kv.UsedBlocks);
    }
}
