using Serving.Batching.Scheduling;
using Serving.Contracts;

namespace Serving.Batching.Tests.Scheduling;

/// <summary>
/// Adapter slots over a <see cref="FakeSlotTable"/> (pins, LRU) with controllable loading: adapters in
/// <see cref="Loading"/> answer "pending" until their task completes; adapters in <see cref="Broken"/> fail.
/// </summary>
internal sealed class FakeAdapterSlots(int slots) : IAdapterSlotProvider
{
    public FakeSlotTable Table { get; } = new(slots);
    public Dictionary<AdapterId, TaskCompletionSource> Loading { get; } = [];
    public HashSet<AdapterId> Broken { get; } = [];
    public List<AdapterId> Prefetched { get; } = [];

    public void Prefetch(RequestId request, AdapterMix mix) => Prefetched.AddRange(mix.Entries.Select(e => e.Id));

    public AdapterAcquisition TryAcquire(RequestId request, AdapterMix mix)
    {
        foreach (var (id, _) in mix.Entries)
        {
            if (Broken.Contains(id))
                return AdapterAcquisition.Failed(new InvalidDataException($"adapter '{id}' is corrupt"));
            if (Loading.TryGetValue(id, out var load) && !load.Task.IsCompleted)
                return AdapterAcquisition.Loading(load.Task);
        }

        var keys = mix.Entries.Select(e => new AdapterVersionKey(e.Id, "v1")).ToList();
        var bound = new List<AdapterSlotWeight>();
        for (int i = 0; i < keys.Count; i++)
        {
            if (!Table.TryAcquire(keys[i], out var slot))
            {
                Release(bound);
                return AdapterAcquisition.NoFreeSlot;
            }

            bound.Add(new AdapterSlotWeight(slot.Value, mix.Entries[i].Weight));
        }

        return AdapterAcquisition.Ready(bound);
    }

    public void Release(IReadOnlyList<AdapterSlotWeight> slots)
    {
        foreach (var s in slots)
            Table.Release(new SlotIndex(s.Slot));
    }
}
