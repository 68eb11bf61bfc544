namespace Serving.Batching.Scheduling;

/// <summary>
/// The orders a <see cref="SchedulingPolicy"/> puts requests in: which waiting request is admitted first, which running
/// request feeds first, and which gives way first. First come, first served orders by arrival and admission alone;
/// priority scheduling orders by <see cref="ScheduledRequest.Priority"/> first (lower is more urgent).
/// </summary>
internal sealed class RequestOrder(SchedulingPolicy policy)
{
    public SchedulingPolicy Policy => policy;

    /// <summary>The waiting queue's order: most urgent first, then by arrival (so a preempted request returns to its place).</summary>
    public IComparer<ScheduledRequest> Waiting { get; } = Comparer<ScheduledRequest>.Create(policy == SchedulingPolicy.Priority
        ? static (a, b) => a.Priority != b.Priority ? a.Priority.CompareTo(b.Priority) : a.Arrival.CompareTo(b.Arrival)
        : static (a, b) => a.Arrival.CompareTo(b.Arrival));

    /// <summary>Running requests in the order they claim KV blocks and the prefill budget: most urgent first, then oldest admission.</summary>
    public IEnumerable<ScheduledRequest> Feeding(IEnumerable<ScheduledRequest> running) => policy == SchedulingPolicy.Priority
        ? running.OrderBy(r => r.Priority).ThenBy(r => r.Admission)
        : running;

    /// <summary>The running request that gives way first: the least urgent, and among equals the youngest admission.</summary>
    /// <param name="running">Running requests in admission order; not empty.</param>
    public ScheduledRequest FirstVictim(IReadOnlyList<ScheduledRequest> running)
    {
        var victim = running[^1];
        if (policy == SchedulingPolicy.Priority)
            foreach (var r in running)
                if (r.Priority > victim.Priority || (r.Priority == victim.Priority && r.Admission > victim.Admission))
                    victim = r;
        return victim;
    }

    /// <summary>
    /// Under priority scheduling, the running requests strictly less urgent than <paramref name="candidate"/> whose
    /// preemption gives it what it lacks — a row when <paramref name="needsRow"/>, and <paramref name="blocksShort"/>
    /// more free KV blocks — least urgent first and no more than needed; null when preempting all of them would not be
    /// enough (nothing is preempted in vain), and under first come, first served whenever anything is lacking.
    /// </summary>
    /// <param name="candidate">The waiting request to admit.</param>
    /// <param name="running">Running requests.</param>
    /// <param name="needsRow">Whether every row is taken.</param>
    /// <param name="blocksShort">KV blocks it needs beyond the free ones (≤ 0: none).</param>
    /// <param name="kv">The allocator: a victim's block is freed only when every holder of it is preempted.</param>
    public IReadOnlyList<ScheduledRequest>? VictimsFor(ScheduledRequest candidate, IReadOnlyList<ScheduledRequest> running, bool needsRow, int blocksShort,
        KvBlockAllocator kv)
    {
        if (!needsRow && blocksShort <= 0)
            return [];
        if (policy != SchedulingPolicy.Priority)
            return null;
        var victims = new List<ScheduledRequest>();
        var dropped = new Dictionary<int, int>();
        int freed = 0;
        foreach (var r in running.Where(r => r.Priority > candidate.Priority).OrderByDescending(r => r.Priority).ThenByDescending(r => r.Admission))
        {
            victims.Add(r);
            foreach (int block in r.Blocks.Held)
            {
                int drops = dropped[block] = dropped.GetValueOrDefault(block) + 1;
                if (drops == kv.References(block))
                    freed++;
            }

            if (freed >= blocksShort)
                return victims;
        }

        return null;
    }
}
