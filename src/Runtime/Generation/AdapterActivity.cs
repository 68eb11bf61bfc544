using Serving.AdapterStore.Tiers;
using Serving.Batching.Scheduling;
using Serving.Contracts;

namespace Serving.Runtime.Generation;

/// <summary>
/// What one adapter is doing: running and waiting requests that use it (alone or in a mix), and the pins on its device
/// slot (a slot cannot be evicted while pinned; a running request pins the slots of its adapters).
/// </summary>
public readonly record struct AdapterActivity(int Running, int Waiting, int Pins)
{
    /// <summary>The activity per adapter over <paramref name="running"/> and <paramref name="waiting"/> requests and the slots of <paramref name="slots"/>.</summary>
    public static IReadOnlyDictionary<AdapterId, AdapterActivity> Of(IReadOnlyList<ScheduledRequest> running, IReadOnlyList<ScheduledRequest> waiting, DeviceSlotTable? slots)
    {
        var activity = new Dictionary<AdapterId, AdapterActivity>();
        foreach (var r in running)
            foreach (var e in r.Adapters.Entries)
                activity[e.Id] = activity.GetValueOrDefault(e.Id) with { Running = activity.GetValueOrDefault(e.Id).Running + 1 };
        foreach (var r in waiting)
            foreach (var e in r.Adapters.Entries)
                activity[e.Id] = activity.GetValueOrDefault(e.Id) with { Waiting = activity.GetValueOrDefault(e.Id).Waiting + 1 };
        for (int s = 0; slots is not null && s < slots.Capacity; s++)
            if (slots.Occupant(new SlotIndex(s)) is { } key && slots.Pins(new SlotIndex(s)) is > 0 and var pins)
                activity[key.Id] = activity.GetValueOrDefault(key.Id) with { Pins = pins };
        return activity;
    }
}
