using Serving.Batching.Scheduling;
using Serving.Contracts;

namespace Serving.Batching.Tests.Scheduling;

public sealed class StepSchedulerAdmissionTests
{
    [Fact]
    public void PlanStep_MoreRequestsThanRows_AdmitsInArrivalOrder()
    {
        var engine = new FakeEngine(maxSequences: 3);
        var ids = Enumerable.Range(0, 5).Select(_ => engine.Submit(maxNewTokens: 2)).ToList();

        var first = engine.Step();

        Assert.Equal(ids.Take(3), first.Started.Select(s => s.Id));
        Assert.Equal(2, engine.Scheduler.Waiting);
        engine.RunUntilIdle();
        Assert.True(engine.StartedAtStep[ids[3]] <= engine.StartedAtStep[ids[4]]);
        Assert.All(ids, id => Assert.Equal(2, engine.Generated[id]));
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_MoreAdaptersThanSlots_NeverRunsMoreDistinctAdaptersThanSlots()
    {
        var engine = new FakeEngine(slots: 2, maxSequences: 8);
        var ids = new[] { "a", "b", "c", "a", "d", "b" }.Select(a => engine.Submit(a, maxNewTokens: 3)).ToList();

        var first = engine.Step();

        // a, b take the two slots; their later requests join; c and d wait for a slot to be unpinned.
        Assert.Equal([ids[0], ids[1], ids[3], ids[5]], first.Started.Select(s => s.Id));
        Assert.Equal(2, engine.DistinctSlots(first));
        engine.RunUntilIdle();
        Assert.All(ids, id => Assert.Equal(3, engine.Generated[id]));
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_AdapterStillLoading_OthersRunAndItJoinsWhenLoaded()
    {
        var engine = new FakeEngine();
        var load = new TaskCompletionSource();
        engine.Slots.Loading[AdapterId.Parse("cold")] = load;
        var cold = engine.Submit("cold", maxNewTokens: 50);
        var warm = engine.Submit("warm", maxNewTokens: 50);

        var first = engine.Step();
        Assert.Equal([warm], first.Started.Select(s => s.Id));
        engine.Step();
        load.SetResult();
        var joined = engine.Step();

        Assert.Equal([cold], joined.Started.Select(s => s.Id));
        engine.RunUntilIdle();
        engine.AssertDrained();
    }

    [Fact]
    public async Task PlanStep_OnlyLoadingWork_WakeCompletesWhenTheLoadDoes()
    {
        var engine = new FakeEngine();
        var load = new TaskCompletionSource();
        engine.Slots.Loading[AdapterId.Parse("cold")] = load;
        engine.Submit("cold");

        var plan = engine.Step();

        Assert.True(plan.IsEmpty);
        Assert.False(plan.Wake.IsCompleted);
        load.SetResult();
        await plan.Wake.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task PlanStep_Idle_WakeCompletesOnArrival()
    {
        var engine = new FakeEngine();
        var plan = engine.Step();
        Assert.False(plan.Wake.IsCompleted);

        engine.Submit();

        await plan.Wake.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void PlanStep_RequestsBeyondTheRowsAdmittedThisStep_TheirAdaptersArePrefetched()
    {
        var engine = new FakeEngine(maxSequences: 2);
        engine.Submit("a", maxNewTokens: 50);
        engine.Submit("b", maxNewTokens: 50);
        engine.Submit("c");
        engine.Submit();
        engine.Submit("d");

        engine.Step();

        Assert.Equal(["c", "d"], engine.Slots.Prefetched.Select(id => id.Value));
        Assert.Equal(0, engine.Slots.Table.Pins(new Serving.Contracts.SlotIndex(2)));   // prefetch takes no slot
    }

    [Fact]
    public void PlanStep_AdapterFailsToLoad_EndsOnlyThatRequest()
    {
        var engine = new FakeEngine();
        engine.Slots.Broken.Add(AdapterId.Parse("bad"));
        var bad = engine.Submit("bad");
        var good = engine.Submit("good");

        var plan = engine.Step();

        var ended = Assert.Single(plan.Ended);
        Assert.Equal((bad, EndCause.Failed), (ended.Id, ended.Cause));
        Assert.Contains("corrupt", ended.Error!.Message);
        Assert.Equal([good], plan.Started.Select(s => s.Id));
        engine.RunUntilIdle();
        engine.AssertDrained();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1000)]
    public void PlanStep_FloodForOtherAdapters_StarvedAdapterStartsWithinBound(int extraStarvationSteps)
    {
        // Two slots, kept pinned by a steady flood of requests for a and b; c needs a slot of its own.
        const int starvationSteps = 10, maxNewTokens = 20;
        var engine = new FakeEngine(new BatchingOptions { StarvationSteps = starvationSteps + extraStarvationSteps }, slots: 2, maxSequences: 8);
        RequestId? starved = null;
        int ahead = 0;
        for (int step = 0; step < 300; step++)
        {
            if (engine.Scheduler.Waiting < 6)
            {
                engine.Submit("a", maxNewTokens: maxNewTokens);
                engine.Submit("b", maxNewTokens: maxNewTokens);
            }

            if (step == 5)
            {
                ahead = engine.Scheduler.Waiting;
                starved = engine.Submit("c", maxNewTokens: 1);
            }

            engine.Step();
        }

        if (extraStarvationSteps == 0)
        {
            // Bound: the starvation window, then the requests that arrived before it (FCFS) and the running ones drain.
            Assert.True(engine.StartedAtStep.TryGetValue(starved!.Value, out int at), "the starved request never started");
            int drainWindows = 1 + (ahead + 7) / 8;
            Assert.InRange(at, 6, 6 + starvationSteps + drainWindows * maxNewTokens + 2);
        }
        else
        {
            // Without the bound, the flood keeps both slots pinned forever: the mechanism is what lets c in.
            Assert.False(engine.StartedAtStep.ContainsKey(starved!.Value));
        }
    }

    [Fact]
    public void PlanStep_TenantAtItsLimit_OtherTenantsStillAdmitted()
    {
        var engine = new FakeEngine(new BatchingOptions { MaxRunningPerTenant = 2 }, maxSequences: 8);
        var heavy = Enumerable.Range(0, 4).Select(_ => engine.Submit(tenant: "heavy", maxNewTokens: 5)).ToList();
        var light = engine.Submit(tenant: "light", maxNewTokens: 5);

        var plan = engine.Step();

        Assert.Equal([heavy[0], heavy[1], light], plan.Started.Select(s => s.Id));
        Assert.Equal(2, engine.Scheduler.Waiting);
        engine.RunUntilIdle();
        Assert.All(heavy, id => Assert.Equal(5, engine.Generated[id]));
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_PerAdapterPolicy_OnlyTheRunningAdapterSetShares()
    {
        var engine = new FakeEngine(new BatchingOptions { Policy = AdmissionPolicy.PerAdapter }, slots: 4);
        var a1 = engine.Submit("a", maxNewTokens: 3);
        var b = engine.Submit("b", maxNewTokens: 3);
        var a2 = engine.Submit("a", maxNewTokens: 3);

        var plan = engine.Step();

        Assert.Equal([a1, a2], plan.Started.Select(s => s.Id));
        engine.RunUntilIdle();
        Assert.True(engine.StartedAtStep[b] > 3);
        engine.AssertDrained();
    }

    [Fact]
    public void PlanStep_LongPrompts_ChunkedUnderBudgetWithDecodeRowsFirst()
    {
        var engine = new FakeEngine(new BatchingOptions { MaxPrefillTokensPerStep = 16 }, maxContext: 512);
        var running = engine.Submit(prompt: 4, maxNewTokens: 20);
        engine.Step();
        var longPrompt = engine.Submit(prompt: 40, maxNewTokens: 2);

        var plans = Enumerable.Range(0, 3).Select(_ => engine.Step()).ToList();

        Assert.All(plans, p => Assert.Contains(p.Rows, r => r.Id == running && r.TokenCount == 1));
        Assert.Equal([16, 16, 8], plans.Select(p => p.Rows.Single(r => r.Id == longPrompt).TokenCount));
        Assert.Equal([false, false, true], plans.Select(p => p.Rows.Single(r => r.Id == longPrompt).EmitsToken));
        engine.RunUntilIdle();
        engine.AssertDrained();
    }
}
