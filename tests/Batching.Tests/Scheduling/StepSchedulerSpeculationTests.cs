using Serving.Batching.Scheduling;
using Serving.Contracts;

namespace Serving.Batching.Tests.Scheduling;

public sealed class StepSchedulerSpeculationTests
{
    [Fact]
    public void PlanStep_DecodeRowWithDrafts_FeedsThemAfterTheLastTokenAndCountsOnlyTheAccepted()
    {
        var engine = new FakeEngine(new BatchingOptions { KvBlockSize = 4 }, maxContext: 64) { DraftsPerStep = 3, AcceptDrafts = (_, _, d) => Math.Min(2, d) };
        var id = engine.Submit(prompt: 6, maxNewTokens: 20);

        engine.Step();                                      // the prompt, first token: no drafts were proposed yet
        var plan = engine.Step();

        var row = plan.Rows.Single();
        Assert.Equal((6, 4, 3, 1), (row.StartPosition, row.TokenCount, row.DraftTokens, row.SequenceTokens));
        Assert.True(row.EmitsToken);
        Assert.True(row.Blocks[0].Count * 4 >= 10, "the drafts' positions need blocks too");
        var request = engine.Scheduler.RunningRequests.Single();
        Assert.Equal((9, 10), (request.Computed, request.Length));   // the last token and 2 accepted drafts cached; 3 tokens added
        Assert.Equal(4, engine.Generated[id]);
        engine.RunUntilIdle();
        Assert.Equal(20, engine.Generated[id]);
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_DraftsWouldPassTheContextLimit_CutToFit()
    {
        var engine = new FakeEngine(new BatchingOptions { KvBlockSize = 4 }, maxContext: 12) { DraftsPerStep = 8, AcceptDrafts = (_, _, d) => d };
        engine.Submit(prompt: 6, maxNewTokens: 100);

        engine.RunUntilIdle();

        Assert.All(engine.Plans.SelectMany(p => p.Rows), r => Assert.True(r.StartPosition + r.TokenCount <= 11));
        Assert.Contains(engine.Plans.SelectMany(p => p.Rows), r => r.DraftTokens > 0);
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_DraftsNeedBlocksNoneAreFree_CutToTheHeldBlocksAndPreemptsNoOne()
    {
        // 4 blocks of 4 tokens: two sequences of 7 tokens hold 2 blocks each; one draft fits the last free position of each,
        // more would need a fifth block.
        var engine = new FakeEngine(new BatchingOptions { KvBlockSize = 4, KvCacheTokens = 16 }, maxContext: 16)
        {
            DraftsPerStep = 4, AcceptDrafts = (_, _, _) => 0,
        };
        engine.Submit(prompt: 6, maxNewTokens: 3);
        engine.Submit(prompt: 6, maxNewTokens: 3);
        engine.Step();
        Assert.Equal(4, engine.Scheduler.Kv.UsedBlocks);

        var plan = engine.Step();

        Assert.All(plan.Rows, r => Assert.Equal(1, r.DraftTokens));
        Assert.Empty(plan.Preempted);
        Assert.Equal(4, engine.Scheduler.Kv.UsedBlocks);
        engine.RunUntilIdle();
        Assert.Equal(0, engine.Scheduler.Preemptions);
        engine.AssertDrained();
    }

    [Fact]
    public void CompleteStep_MoreAcceptedThanPlanned_Throws()
    {
        var engine = new FakeEngine(new BatchingOptions { KvBlockSize = 4 }, maxContext: 64) { DraftsPerStep = 2 };
        engine.Submit(prompt: 6, maxNewTokens: 20);
        engine.Step();
        var plan = engine.Scheduler.PlanStep();

        var ex = Assert.Throws<ArgumentException>(() => engine.Scheduler.CompleteStep(plan, [new RowResult(true, false, AcceptedDrafts: 3)]));

        Assert.Contains("3 drafts accepted of 2", ex.Message);
    }

    [Fact]
    public void PlanStep_RandomTrafficWithDraftsPrefixesCancellationsAndPreemption_InvariantsHoldAndEverythingReturnsToZero()
    {
        var random = new Random(77);
        var engine = new FakeEngine(new BatchingOptions { KvBlockSize = 8, KvCacheTokens = 384, MaxPrefillTokensPerStep = 64, MaxQueuedRequests = 10_000 },
            slots: 3, maxSequences: 10, maxContext: 128) { DraftsPerStep = 5 };
        var prefixes = Enumerable.Range(0, 4).Select(i => Enumerable.Range(0, random.Next(1, 60)).Select(_ => random.Next(5, 4000)).ToArray()).ToArray();
        var cancels = new List<CancellationTokenSource>();
        for (int i = 0; i < 3000; i++)
        {
            var cts = new CancellationTokenSource();
            cancels.Add(cts);
            var prefix = prefixes[random.Next(prefixes.Length)];
            int[] prompt = [.. prefix.Take(random.Next(0, prefix.Length + 1)), .. Enumerable.Range(0, random.Next(1, 30)).Select(_ => random.Next(5, 4000))];
            engine.Submit(random.Next(4) == 0 ? null : $"ad{random.Next(5)}", maxNewTokens: random.Next(1, 60), aborted: cts.Token, tokens: prompt);
            if (random.Next(8) == 0)
                cancels[random.Next(cancels.Count)].Cancel();
            if (random.Next(2) == 0)
                engine.Step();
        }

        engine.RunUntilIdle(200_000);

        engine.AssertDrained();
        Assert.True(engine.DraftsAccepted > 1000, $"only {engine.DraftsAccepted} drafts accepted");
        Assert.True(engine.DraftsAccepted < engine.DraftsPlanned, "some drafts were meant to be rejected");
        Assert.True(engine.Scheduler.Preemptions > 0, "the KV budget was meant to preempt");
        Assert.True(engine.Scheduler.PrefixCacheHits > 0);
        foreach (var cts in cancels)
            cts.Dispose();
    }
}
