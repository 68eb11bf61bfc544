using Serving.Batching.Scheduling;
using Serving.Contracts;

namespace Serving.Batching.Tests.Scheduling;

public sealed class StepSchedulerLifecycleTests
{
    [Fact]
    public void PlanStep_KvBudgetExhausted_PreemptsYoungestAndResumesItByRecomputing()
    {
        // 6 blocks of 4 tokens: two 8-token prompts fit (2 blocks each, 3 with the first token), but both growing to 16
        // tokens need 8 blocks, so the younger is preempted and later recomputes prompt + its generated tokens.
        var engine = new FakeEngine(new BatchingOptions { KvBlockSize = 4, KvCacheTokens = 24 }, maxContext: 24);
        var older = engine.Submit("a", prompt: 8, maxNewTokens: 8);
        var younger = engine.Submit("b", prompt: 8, maxNewTokens: 8);

        engine.RunUntilIdle();

        var preemptedIn = engine.Plans.FindIndex(p => p.Preempted.Contains(younger));
        Assert.True(preemptedIn >= 0, "the younger sequence was never preempted");
        Assert.DoesNotContain(engine.Plans, p => p.Preempted.Contains(older));
        var resume = engine.Plans.Skip(preemptedIn + 1).First(p => p.Started.Any(s => s.Id == younger));
        Assert.True(resume.Started.Single(s => s.Id == younger).Resumed);
        var recompute = resume.Rows.Single(r => r.Id == younger);
        Assert.Equal(0, recompute.StartPosition);
        Assert.True(recompute.TokenCount > 8, "the resumed row must recompute the prompt and the tokens generated before");
        Assert.Equal(8, engine.Generated[older]);
        Assert.Equal(8, engine.Generated[younger]);
        Assert.True(engine.Scheduler.Preemptions >= 1);
        engine.AssertDrained();
    }

    [Fact]
    public void Constructor_CacheSmallerThanOneMaxContextSequence_ThrowsNamingBoth()
    {
        var ex = Assert.Throws<ArgumentException>(() => new FakeEngine(new BatchingOptions { KvBlockSize = 4, KvCacheTokens = 60 }, maxContext: 64));

        Assert.Contains("15 blocks of 4 tokens", ex.Message);
        Assert.Contains("max context 64", ex.Message);
    }

    [Fact]
    public void PlanStep_CancelledWhileRunning_LeavesAtNextStepAndReleasesEverything()
    {
        var engine = new FakeEngine(slots: 2);
        using var cancel = new CancellationTokenSource();
        var doomed = engine.Submit("a", maxNewTokens: 1000, aborted: cancel.Token);
        var other = engine.Submit("b", maxNewTokens: 5);
        engine.Step();
        engine.Step();

        cancel.Cancel();
        var plan = engine.Step();

        Assert.Contains(plan.Ended, e => e.Id == doomed && e.Cause == EndCause.Cancelled);
        Assert.DoesNotContain(plan.Rows, r => r.Id == doomed);
        Assert.Equal(1, engine.Slots.Table.TotalPins);
        engine.RunUntilIdle();
        Assert.Equal(5, engine.Generated[other]);
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_CancelledWhileWaiting_LeavesTheQueue()
    {
        var engine = new FakeEngine(maxSequences: 1);
        using var cancel = new CancellationTokenSource();
        engine.Submit(maxNewTokens: 3);
        var queued = engine.Submit(aborted: cancel.Token);
        var idle = engine.Step();
        Assert.Equal(1, engine.Scheduler.Waiting);

        cancel.Cancel();
        var plan = engine.Step();

        Assert.Contains(plan.Ended, e => e.Id == queued && e.Cause == EndCause.Cancelled);
        Assert.Equal(0, engine.Scheduler.Waiting);
        engine.RunUntilIdle();
        engine.AssertDrained();
        _ = idle;
    }

    [Fact]
    public async Task PlanStep_DeadlinePassed_EndsTimedOutAndWakesAnIdleLoop()
    {
        var engine = new FakeEngine(new BatchingOptions { RequestTimeoutSeconds = 2 });
        var load = new TaskCompletionSource();
        engine.Slots.Loading[AdapterId.Parse("slow")] = load;
        var stuck = engine.Submit("slow");
        var plan = engine.Step();
        Assert.True(plan.IsEmpty);
        Assert.False(plan.Wake.IsCompleted);

        engine.Time.Advance(TimeSpan.FromSeconds(2.1));
        await plan.Wake.WaitAsync(TimeSpan.FromSeconds(5));
        var next = engine.Step();

        var ended = Assert.Single(next.Ended);
        Assert.Equal((stuck, EndCause.TimedOut), (ended.Id, ended.Cause));
        Assert.IsType<TimeoutException>(ended.Error);
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_DeadlineWhileRunning_LeavesMidStream()
    {
        var engine = new FakeEngine();
        var id = engine.Submit(maxNewTokens: 1000, deadline: new DateTimeOffset(2026, 11, 24, 0, 0, 1, TimeSpan.Zero));
        engine.Step();
        engine.Step();

        engine.Time.Advance(TimeSpan.FromSeconds(1));
        var plan = engine.Step();

        Assert.Contains(plan.Ended, e => e.Id == id && e.Cause == EndCause.TimedOut);
        Assert.Equal(2, engine.Generated[id]);
        engine.AssertDrained();
    }

    [Fact]
    public void TryEnqueue_QueueAtRequestLimit_RejectsAtOnce()
    {
        var engine = new FakeEngine(new BatchingOptions { MaxQueuedRequests = 2 }, maxSequences: 2);
        for (int i = 0; i < 4; i++)
            engine.Submit();                             // two for the free seats, two for the queue

        engine.Submit(expect: EnqueueOutcome.TooManyRequests);
        engine.Step();                                   // two admitted: no free seat, two waiting
        engine.Submit(expect: EnqueueOutcome.TooManyRequests);
    }

    [Fact]
    public void TryEnqueue_BurstFitsFreeSeats_AllAcceptedEvenWithAShortQueue()
    {
        var engine = new FakeEngine(new BatchingOptions { MaxQueuedRequests = 1 }, maxSequences: 8);
        for (int i = 0; i < 9; i++)
            engine.Submit();

        engine.Submit(expect: EnqueueOutcome.TooManyRequests);
        engine.Step();
        Assert.Equal(8, engine.Scheduler.Running);
        Assert.Equal(1, engine.Scheduler.Waiting);
    }

    [Fact]
    public void TryEnqueue_QueuedTokensAtLimit_RejectsAtOnce()
    {
        var engine = new FakeEngine(new BatchingOptions { MaxQueuedTokens = 100 });
        engine.Submit(prompt: 60);

        engine.Submit(prompt: 41, expect: EnqueueOutcome.TooManyTokens);
        engine.Submit(prompt: 40);
        Assert.Equal(100, engine.Scheduler.QueuedTokens);
    }

    [Fact]
    public void Close_WithQueuedAndRunning_EndsAllAndRefusesNew()
    {
        var engine = new FakeEngine(maxSequences: 1);
        var running = engine.Submit("a", maxNewTokens: 100);
        var queued = engine.Submit("b");
        engine.Step();

        var closed = engine.Scheduler.Close();

        Assert.Equal([running, queued], closed);
        engine.Submit(expect: EnqueueOutcome.Closed);
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_RandomTrafficWithCancellationsAndPreemption_EverythingReturnsToZero()
    {
        var random = new Random(1234);
        var engine = new FakeEngine(new BatchingOptions { KvBlockSize = 8, KvCacheTokens = 512, MaxPrefillTokensPerStep = 64, MaxQueuedRequests = 10_000 },
            slots: 3, maxSequences: 12, maxContext: 256);
        var cancels = new List<CancellationTokenSource>();
        for (int i = 0; i < 2000; i++)
        {
            var cts = new CancellationTokenSource();
            cancels.Add(cts);
            string? adapter = random.Next(5) == 0 ? null : $"ad{random.Next(6)}";
            engine.Submit(adapter, prompt: random.Next(1, 100), maxNewTokens: random.Next(1, 40), aborted: cts.Token);
            if (random.Next(3) == 0)
                cancels[random.Next(cancels.Count)].Cancel();
            if (random.Next(2) == 0)
                engine.Step();
        }

        engine.RunUntilIdle(100_000);

        engine.AssertDrained();
        Assert.Equal(2000, engine.Ended.Count);
        Assert.True(engine.Scheduler.Preemptions > 0, "the workload was meant to exercise preemption");
        foreach (var cts in cancels)
            cts.Dispose();
    }
}
