using Serving.Batching.Scheduling;
using Serving.Contracts;

namespace Serving.Batching.Tests.Scheduling;

public sealed class StepSchedulerPriorityTests
{
    private static BatchingOptions Priority(int kvTokens = 0, int blockSize = 16) =>
        new() { SchedulingPolicy = SchedulingPolicy.Priority, KvCacheTokens = kvTokens, KvBlockSize = blockSize };

    [Fact]
    public void PlanStep_PriorityPolicy_AdmitsMostUrgentFirstThenByArrival()
    {
        var engine = new FakeEngine(Priority(), maxSequences: 2);
        var late5 = engine.Submit(priority: 5, maxNewTokens: 2);
        var early0 = engine.Submit(priority: 0, maxNewTokens: 2);
        var second5 = engine.Submit(priority: 5, maxNewTokens: 2);
        var urgent = engine.Submit(priority: -3, maxNewTokens: 2);
        var later0 = engine.Submit(priority: 0, maxNewTokens: 2);

        var first = engine.Step();

        Assert.Equal([urgent, early0], first.Started.Select(s => s.Id));
        Assert.Equal([later0, late5, second5], engine.Scheduler.WaitingRequests.Select(r => r.Id));
        engine.RunUntilIdle();
        Assert.True(engine.StartedAtStep[later0] <= engine.StartedAtStep[late5]);
        Assert.True(engine.StartedAtStep[late5] <= engine.StartedAtStep[second5]);
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_FcfsPolicy_IgnoresPriority()
    {
        var engine = new FakeEngine(maxSequences: 1);
        var first = engine.Submit(priority: 9, maxNewTokens: 3);
        var urgent = engine.Submit(priority: -9, maxNewTokens: 3);

        var plan = engine.Step();

        Assert.Equal([first], plan.Started.Select(s => s.Id));
        Assert.Empty(plan.Preempted);
        engine.RunUntilIdle();
        Assert.DoesNotContain(engine.Plans, p => p.Preempted.Count > 0);
        Assert.True(engine.StartedAtStep[urgent] > engine.StartedAtStep[first]);
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_UrgentArrivalWithEveryRowTaken_PreemptsTheLeastUrgentYoungestAndItResumes()
    {
        var engine = new FakeEngine(Priority(), maxSequences: 3);
        var low1 = engine.Submit(priority: 5, maxNewTokens: 30);
        var low2 = engine.Submit(priority: 5, maxNewTokens: 30);
        var mid = engine.Submit(priority: 1, maxNewTokens: 30);
        engine.Step();
        engine.Step();

        var urgent = engine.Submit(priority: 0, maxNewTokens: 4);
        var plan = engine.Step();

        Assert.Equal([low2], plan.Preempted);
        Assert.Equal([urgent], plan.Started.Select(s => s.Id));
        Assert.Contains(plan.Rows, r => r.Id == urgent);
        Assert.DoesNotContain(plan.Rows, r => r.Id == low2);
        engine.RunUntilIdle();
        Assert.All([low1, low2, mid], id => Assert.Equal(30, engine.Generated[id]));
        Assert.DoesNotContain(engine.Plans, p => p.Preempted.Contains(mid) || p.Preempted.Contains(low1));
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_ArrivalNoMoreUrgentThanAnyRunning_WaitsWithoutPreempting()
    {
        var engine = new FakeEngine(Priority(), maxSequences: 2);
        engine.Submit(priority: 2, maxNewTokens: 10);
        engine.Submit(priority: 3, maxNewTokens: 10);
        engine.Step();

        var same = engine.Submit(priority: 3, maxNewTokens: 2);
        var plan = engine.Step();

        Assert.Empty(plan.Preempted);
        Assert.Empty(plan.Started);
        engine.RunUntilIdle();
        Assert.DoesNotContain(engine.Plans, p => p.Preempted.Count > 0);
        Assert.Equal(2, engine.Generated[same]);
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_UrgentArrivalShortOfKvMemory_PreemptsOnlyAsManyLessUrgentAsItNeeds()
    {
        // 16 blocks of 4 tokens; four 12-token prompts hold 3 blocks each, and 4 once their first token is fed back.
        var engine = new FakeEngine(Priority(kvTokens: 64, blockSize: 4), maxSequences: 8, maxContext: 64);
        var running = new[] { 4, 6, 6, 2 }.Select(p => engine.Submit(prompt: 12, priority: p, maxNewTokens: 3)).ToList();
        engine.Step();
        engine.Step();
        Assert.Equal(16, engine.Scheduler.Kv.UsedBlocks);

        var urgent = engine.Submit(prompt: 7, priority: 1, maxNewTokens: 1);   // 2 blocks
        var plan = engine.Step();

        Assert.Equal([running[2]], plan.Preempted);                         // the younger of the two least urgent
        Assert.Equal([urgent], plan.Started.Select(s => s.Id));
        engine.RunUntilIdle();
        Assert.All(running, id => Assert.Equal(3, engine.Generated[id]));
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_PreemptingEveryLessUrgentWouldNotFreeEnough_PreemptsNothing()
    {
        // 12 blocks of 4: the urgent prompt needs 9, the one less urgent request holds 4 and free are 4.
        var engine = new FakeEngine(Priority(kvTokens: 48, blockSize: 4), maxSequences: 8, maxContext: 48);
        var more = engine.Submit(prompt: 12, priority: 0, maxNewTokens: 3);
        var less = engine.Submit(prompt: 12, priority: 5, maxNewTokens: 3);
        engine.Step();

        var urgent = engine.Submit(prompt: 33, priority: 1, maxNewTokens: 2);
        var plan = engine.Step();

        Assert.Empty(plan.Preempted);
        Assert.Empty(plan.Started);
        Assert.Equal(2, plan.Rows.Count);
        engine.RunUntilIdle();
        Assert.Equal(2, engine.Generated[urgent]);
        Assert.Equal(3, engine.Generated[more]);
        Assert.Equal(3, engine.Generated[less]);
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_RunningOutOfKvUnderPriority_PreemptsTheLeastUrgentNotTheYoungest()
    {
        // 6 blocks of 4 tokens: both sequences growing to 16 tokens need 8, so one gives way: the less urgent, which came first.
        var engine = new FakeEngine(Priority(kvTokens: 24, blockSize: 4), maxContext: 24);
        var lessUrgent = engine.Submit(prompt: 8, priority: 1, maxNewTokens: 8);
        var moreUrgent = engine.Submit(prompt: 8, priority: 0, maxNewTokens: 8);

        engine.RunUntilIdle();

        Assert.Contains(engine.Plans, p => p.Preempted.Contains(lessUrgent));
        Assert.DoesNotContain(engine.Plans, p => p.Preempted.Contains(moreUrgent));
        Assert.Equal(8, engine.Generated[lessUrgent]);
        Assert.Equal(8, engine.Generated[moreUrgent]);
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_RandomPrioritiesWithCancellationsAndPreemption_NoneGivesWayToALessUrgentAndAllReturnsToZero()
    {
        var random = new Random(4321);
        var engine = new FakeEngine(new BatchingOptions
        {
            SchedulingPolicy = SchedulingPolicy.Priority, KvBlockSize = 8, KvCacheTokens = 512, MaxPrefillTokensPerStep = 64, MaxQueuedRequests = 10_000,
        }, slots: 3, maxSequences: 12, maxContext: 256);
        var priorities = new Dictionary<RequestId, int>();
        var cancels = new List<CancellationTokenSource>();
        for (int i = 0; i < 2000; i++)
        {
            var cts = new CancellationTokenSource();
            cancels.Add(cts);
            string? adapter = random.Next(5) == 0 ? null : $"ad{random.Next(6)}";
            int priority = random.Next(-2, 3);
            var id = engine.Submit(adapter, prompt: random.Next(1, 100), maxNewTokens: random.Next(1, 40), aborted: cts.Token, priority: priority);
            priorities[id] = priority;
            if (random.Next(4) == 0)
                cancels[random.Next(cancels.Count)].Cancel();
            if (random.Next(2) == 0)
                AssertPreemptedOnlyForMoreUrgent(engine.Step(), priorities);
        }

        for (int i = 0; i < 100_000 && (engine.Scheduler.Running > 0 || engine.Scheduler.Waiting > 0); i++)
            AssertPreemptedOnlyForMoreUrgent(engine.Step(), priorities);

        engine.AssertDrained();
        Assert.Equal(2000, engine.Ended.Count);
        Assert.True(engine.Scheduler.Preemptions > 0, "the workload was meant to exercise preemption");
        foreach (var cts in cancels)
            cts.Dispose();
    }

    /// <summary>A step that preempts a request runs nothing less urgent than it and admits only requests more urgent than it.</summary>
    private static void AssertPreemptedOnlyForMoreUrgent(StepPlan plan, Dictionary<RequestId, int> priorities)
    {
        foreach (var victim in plan.Preempted)
        {
            Assert.All(plan.Rows, r => Assert.True(priorities[r.Id] <= priorities[victim], $"{r.Id} ran while {victim}, more urgent, gave way"));
            Assert.All(plan.Started, s => Assert.True(priorities[s.Id] < priorities[victim], $"{s.Id} was admitted while {victim}, as urgent, gave way"));
        }
    }
}
