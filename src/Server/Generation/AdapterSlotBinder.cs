using Serving.AdapterStore;
using Serving.AdapterStore.Peft;
using Serving.AdapterStore.Tiers;
using Serving.Batching;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Server.Hosting;

namespace Serving.Server.Generation;

/// <summary>
/// Gives a request's adapters device slots on the engine loop: pins resident ones, loads missing ones from the store
/// into the arena (validated by the PEFT reader first, so a bad adapter never reaches a slot), and unpins when the
/// request ends. Runs only on the engine thread, between steps, so no step ever sees a half-written slot.
/// </summary>
internal sealed class AdapterSlotBinder(ModelHost host, int maxRank)
{
    private readonly DeviceSlotTable? _table = host.Model.Model.Adapters is LoraSlotArena arena ? new DeviceSlotTable(arena.Slots) : null;

    /// <summary>
    /// Slots and weights for <paramref name="mix"/>, or null when every slot is pinned and the request must wait.
    /// Throws <see cref="AdapterFormatException"/> or <see cref="AdapterNotFoundException"/> for adapters that cannot run.
    /// </summary>
    public IReadOnlyList<(int Slot, float Weight)>? TryBind(AdapterMix mix)
    {
        if (mix.IsBaseModel)
            return [];
        if (_table is null)
            throw new AdapterNotFoundException(mix.Entries[0].Id.Value);
        var bound = new List<(int Slot, float Weight)>();
        try
        {
            foreach (var (id, weight) in mix.Entries)
            {
                // The version is fixed here, at admission: a hot swap after this point does not affect this request.
                var record = host.Adapters.Resolve(id) ?? throw new AdapterNotFoundException(id.Value);
                var key = new AdapterVersionKey(id, record.Version);
                if (!_table.TryAcquire(key, out var slot, out bool needsLoad))
                {
                    Release(bound);
                    return null;
                }

                if (needsLoad)
                {
                    try
                    {
                        Load(record, slot);
                    }
                    catch
                    {
                        _table.Abandon(slot);
                        throw;
                    }
                }

                bound.Add((slot.Value, weight));
            }
        }
        catch
        {
            Release(bound);
            throw;
        }

        return bound;
    }

    public void Release(IReadOnlyList<(int Slot, float Weight)> bound)
    {
        foreach (var (slot, _) in bound)
            _table!.Release(new SlotIndex(slot));
    }

    private void Load(AdapterStore.Registry.AdapterRecord record, SlotIndex slot)
    {
        var weights = PeftAdapterReader.Read(record.Source, record.Id.Value, host.Model.Config, maxRank);
        host.Model.Model.Adapters!.Load(slot.Value, weights);
    }
}
