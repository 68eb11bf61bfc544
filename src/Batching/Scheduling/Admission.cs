using Serving.Batching.PrefixCaching;
using Serving.Contracts;

namespace Serving.Batching.Scheduling;

/// <summary>
/// The admission half of a step (<see cref="StepScheduler.PlanStep"/>): waiting requests join the batch in the order
/// <see cref="AdmissionPlanner"/> gives while rows, the prefill budget, KV blocks (the prefix cache's reused ones first)
/// and adapter slots allow; one that cannot get a slot or KV memory waits without holding back the ones behind it until
/// it has waited <see cref="BatchingOptions.StarvationSteps"/> steps; under priority scheduling a request may preempt
/// running requests strictly less urgent than itself (<see cref="RequestOrder.VictimsFor"/>). Adapters of requests not
/// reached are warmed. Runs on the engine loop, on the scheduler's own collections.
/// </summary>
internal sealed class Admission(BatchingOptions options, int maxSequences, KvBlockAllocator kv, PrefixCache prefixes, RequestOrder order,
    WaitingQueue waiting, RunningSet running, IAdapterSlotProvider adapters, Action<ScheduledRequest> preempt)
{
    private long _admissions;

    /// <summary>
    /// Admits what this step allows: each admitted request's tokens go into <paramref name="tokens"/> (taken from
    /// <paramref name="budget"/>) and its start into <paramref name="started"/>; adapter reads to wait for into
    /// <paramref name="loads"/>; requests whose adapters cannot be had into <paramref name="ended"/>. Requests in
    /// <paramref name="preemptedNow"/> (preempted this step) are not readmitted; those it preempts join them.
    /// </summary>
    public void Admit(ref int budget, Dictionary<RequestId, int> tokens, List<RequestStarted> started, List<Task> loads, List<RequestEnded> ended,
        List<RequestId> preemptedNow)
    {
        var candidates = AdmissionPlanner.Candidates(options.Policy, running.Select(r => r.Adapters).ToList(), waiting.Items.Select(w => w.Adapters).ToList());
        var admitted = new List<ScheduledRequest>();
        var exempt = new HashSet<ScheduledRequest>();                  // waiting for their own tenant or adapter read: not starving
        int barrier = -1;
        for (int c = 0; c < candidates.Count && barrier < 0; c++)
            if (waiting.Items[candidates[c]].BlockedSteps >= options.StarvationSteps)
                barrier = c;
        int lastExamined = -1;
        var displaced = new List<ScheduledRequest>();                  // preempted for an admission: queued after the loop
        for (int c = 0; c < candidates.Count; c++)
        {
            var r = waiting.Items[candidates[c]];
            bool needsRow = running.Count >= maxSequences;
            if ((barrier >= 0 && c > barrier) || (needsRow && order.Policy == SchedulingPolicy.Fcfs) || budget <= 0
                || (displaced.Count > 0 && r.Priority >= displaced.Min(v => v.Priority)))
                break;                                                   // the displaced come back before anything as urgent
            lastExamined = candidates[c];
            if (preemptedNow.Contains(r.Id))
                continue;
            if (options.MaxRunningPerTenant > 0 && running.OfTenant(r.Tenant) >= options.MaxRunningPerTenant)
            {
                exempt.Add(r);
                continue;
            }

            // Admit only what can cache its whole sequence plus one token, so admission never forces an immediate preemption.
            // Blocks reused from the prefix cache count towards it; taking them first keeps them from being evicted for it.
            int reused = prefixes.Reuse(r);
            int need = kv.Layout.MostHeld(r.Length + 1, options.MaxPrefillTokensPerStep > 0 ? options.MaxPrefillTokensPerStep : r.Length + 1) - r.Blocks.Held.Count();
            if (order.VictimsFor(r, running, needsRow, need - kv.FreeBlocks, kv) is not { } victims)
            {
                kv.Release(r.Blocks);
                if (needsRow)
                    break;                                               // nothing less urgent runs: neither does anything after it
                continue;
            }

            var acquisition = adapters.TryAcquire(r.Id, r.Adapters);
            if (acquisition.Error is Exception error)
            {
                kv.Release(r.Blocks);
                admitted.Add(r);                                         // leaves the queue
                r.Phase = RequestPhase.Ended;
                ended.Add(new RequestEnded(r.Id, EndCause.Failed, error));
                continue;
            }

            if (acquisition.PendingLoad is Task pending)
            {
                kv.Release(r.Blocks);
                loads.Add(pending);
                exempt.Add(r);
                continue;
            }

            if (acquisition.Slots is not IReadOnlyList<AdapterSlotWeight> slots)
            {
                kv.Release(r.Blocks);
                continue;
            }

            foreach (var victim in victims)
            {
                if (tokens.Remove(victim.Id, out int planned) && victim.Length - victim.Computed > 1)
                    budget += planned;
                preempt(victim);
                preemptedNow.Add(victim.Id);
                displaced.Add(victim);
            }

            r.Computed = reused * kv.BlockSize;
            r.CachedPromptTokens = r.Computed;
            r.RegisteredBlocks = reused;
            prefixes.Count(r, r.Computed);

            int n = Math.Min(r.Length - r.Computed, budget);
            r.Slots = slots;
            r.Phase = RequestPhase.Running;
            r.Admission = ++_admissions;
            r.BlockedSteps = 0;
            running.Add(r);
            kv.TryGrow(r.Blocks, r.Computed + n);
            budget -= n;
            tokens[r.Id] = n;
            admitted.Add(r);
            started.Add(new RequestStarted(r.Id, slots, r.Preemptions > 0, r.Computed));
        }

        // Requests the loop did not reach this step: warm their adapters now (bounded look-ahead).
        var examined = candidates.Count == 0 ? 0 : lastExamined + 1;
        foreach (var r in waiting.Items.Skip(examined).Take(2 * maxSequences))
            if (!r.Adapters.IsBaseModel && r.Phase == RequestPhase.Waiting)
                adapters.Prefetch(r.Id, r.Adapters);

        foreach (var r in admitted)
        {
            waiting.Remove(r);
            if (r.Phase == RequestPhase.Ended)
                r.AbortRegistration.Dispose();
        }

        foreach (var r in waiting.Items)
            if (!exempt.Contains(r))
                r.BlockedSteps++;
        foreach (var r in displaced)
            waiting.Requeue(r);
    }
}
