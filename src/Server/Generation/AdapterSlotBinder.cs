using System.Runtime.ExceptionServices;
using Serving.AdapterStore;
using Serving.AdapterStore.Tiers;
using Serving.Batching;
using Serving.Server.Hosting;

namespace Serving.Server.Generation;

/// <summary>
/// Gives a request's adapters device slots, on the engine loop between steps (so no step ever sees a half-written
/// slot). Missing adapters are first read into the host-memory tier on the thread pool (the loop keeps stepping other
/// requests meanwhile); a resident version is pinned, a cold one is copied from host memory into a free or evicted
/// slot. The version is fixed when the request is admitted: a later hot swap does not affect it.
/// </summary>
internal sealed class AdapterSlotBinder(ModelHost host, HostAdapterCache hostCache)
{
    private readonly DeviceSlotTable _table = new(host.Model.Model.Adapters!.Slots);

    public DeviceSlotTable Slots => _table;

    /// <summary>Throws for adapters that cannot run: not found (<see cref="AdapterNotFoundException"/>) or invalid (the reader's error).</summary>
    public BindResult TryBind(AdapterMix mix)
    {
        if (mix.IsBaseModel)
            return new BindResult([], null);
        var wanted = mix.Entries.Select(e => (Record: host.Adapters.Resolve(e.Id) ?? throw new AdapterNotFoundException(e.Id.Value), e.Weight)).ToList();
        var reads = wanted.Select(w => hostCache.GetOrLoad(w.Record)).ToList();   // starts every read at once (prefetch)
        foreach (var read in reads.Where(r => r.IsFaulted))
            ExceptionDispatchInfo.Capture(read.Exception!.InnerException!).Throw();
        var pending = reads.Where(r => !r.IsCompleted).ToArray();
        if (pending.Length > 0)
            return new BindResult(null, Task.WhenAny(pending));

        var bound = new List<(int Slot, float Weight)>();
        for (int i = 0; i < wanted.Count; i++)
        {
            var (record, weight) = wanted[i];
            if (!_table.TryAcquire(new AdapterVersionKey(record.Id, record.Version), out var slot, out bool needsLoad))
            {
                Release(bound);
                return BindResult.WaitForSlot;
            }

            if (needsLoad)
                host.Model.Model.Adapters!.Load(slot.Value, reads[i].Result);
            bound.Add((slot.Value, weight));
        }

        return new BindResult(bound, null);
    }

    public void Release(IReadOnlyList<(int Slot, float Weight)> bound)
    {
        foreach (var (slot, _) in bound)
            _table.Release(new SlotIndex(slot));
    }
}
