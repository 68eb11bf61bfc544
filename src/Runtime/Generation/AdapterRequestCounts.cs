using Serving.Batching.Scheduling;
using Serving.Contracts;

namespace Serving.Runtime.Generation;

/// <summary>How many running and waiting requests use one adapter (alone or in a mix).</summary>
public readonly record struct AdapterRequestCounts(int Running, int Waiting)
{
    /// <summary>The counts per adapter over <paramref name="running"/> and <paramref name="waiting"/> requests.</summary>
    public static IReadOnlyDictionary<AdapterId, AdapterRequestCounts> Count(IReadOnlyList<ScheduledRequest> running, IReadOnlyList<ScheduledRequest> waiting)
    {
        var counts = new Dictionary<AdapterId, AdapterRequestCounts>();
        foreach (var r in running)
            foreach (var e in r.Adapters.Entries)
                counts[e.Id] = counts.GetValueOrDefault(e.Id) with { Running = counts.GetValueOrDefault(e.Id).Running + 1 };
        foreach (var r in waiting)
            foreach (var e in r.Adapters.Entries)
                counts[e.Id] = counts.GetValueOrDefault(e.Id) with { Waiting = counts.GetValueOrDefault(e.Id).Waiting + 1 };
        return counts;
    }
}
