using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Tiers;
using Serving.Batching;
using Serving.Batching.Scheduling;
using Serving.Contracts;
using Serving.Runtime.Hosting;

namespace Serving.Runtime.Generation;

/// <summary>
/// Device slots for the scheduler over the adapter store's tiers, on the engine loop between steps (so no step ever sees a
/// half-written slot). Missing adapters are first read into the host-memory tier on the thread pool (the loop keeps stepping
/// other requests meanwhile); a resident version is pinned, a cold one is copied from host memory into a free or evicted
/// slot. The version is fixed when a request is first admitted: a later hot swap does not affect it, even if it is
/// preempted and resumes.
/// </summary>
internal sealed class AdapterSlotBinder(ModelHost host, HostAdapterCache hostCache, Serving.Runtime.Observability.ServingMetrics? metrics = null) : IAdapterSlotProvider
{
    private readonly DeviceSlotTable _table = new(host.Model.Model.Adapters!.Slots);

    // Records of versions handed out, so a resumed request finds the version it started on after a replacement.
    private readonly Dictionary<AdapterVersionKey, AdapterRecord> _records = [];

    public DeviceSlotTable Slots => _table;

    public AdapterAcquisition TryAcquire(AdapterMix mix, IReadOnlyList<AdapterVersionKey>? versions)
    {
        if (mix.IsBaseModel)
            return AdapterAcquisition.Ready([], []);
        List<AdapterRecord> records;
        try
        {
            records = mix.Entries.Select((e, i) => versions is not null && _records.TryGetValue(versions[i], out var pinned)
                ? pinned
                : host.Adapters.Resolve(e.Id) ?? throw new AdapterNotFoundException(e.Id.Value)).ToList();
        }
        catch (AdapterNotFoundException ex)
        {
            return AdapterAcquisition.Failed(ex);
        }

        var reads = records.Select(hostCache.GetOrLoad).ToList();   // starts every read at once (prefetch)
        if (reads.FirstOrDefault(r => r.IsFaulted) is Task failed)
            return AdapterAcquisition.Failed(failed.Exception!.InnerException!);
        var pending = reads.Where(r => !r.IsCompleted).ToArray();
        if (pending.Length > 0)
            return AdapterAcquisition.Loading(Task.WhenAny(pending));

        var bound = new List<AdapterSlotWeight>();
        var keys = new List<AdapterVersionKey>();
        for (int i = 0; i < records.Count; i++)
        {
            var key = new AdapterVersionKey(records[i].Id, records[i].Version);
            if (!_table.TryAcquire(key, out var slot, out bool needsLoad))
            {
                Release(bound);
                return AdapterAcquisition.NoFreeSlot;
            }

            if (needsLoad)
            {
                long started = System.Diagnostics.Stopwatch.GetTimestamp();
                host.Model.Model.Adapters!.Load(slot.Value, reads[i].Result);
                metrics?.AdapterLoadSeconds.WithLabels("device").Observe(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
            }

            metrics?.AdapterCache.WithLabels("device", needsLoad ? "miss" : "hit").Inc();
            _records[key] = records[i];
            bound.Add(new AdapterSlotWeight(slot.Value, mix.Entries[i].Weight));
            keys.Add(key);
        }

        return AdapterAcquisition.Ready(bound, keys);
    }

    public void Prefetch(AdapterMix mix)
    {
        foreach (var (id, _) in mix.Entries)
            if (host.Adapters.Resolve(id) is AdapterRecord record)
                _ = hostCache.GetOrLoad(record);                 // errors are reported when the request is admitted
    }

    public void Release(IReadOnlyList<AdapterSlotWeight> slots)
    {
        foreach (var s in slots)
            _table.Release(new Serving.Contracts.SlotIndex(s.Slot));
    }
}
