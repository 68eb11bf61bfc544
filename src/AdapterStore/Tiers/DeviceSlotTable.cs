using Serving.Contracts;

namespace Serving.AdapterStore.Tiers;

/// <summary>
/// Which adapter occupies each of the engine's device slots, with pin counts and LRU order. A slot pinned by a running
/// request is never handed to another adapter; when every slot is pinned, acquiring a new adapter fails and the caller
/// waits. Bookkeeping only: the caller copies weights into the arena when told the slot needs loading.
/// Not thread-safe: owned by the engine loop.
/// </summary>
public sealed class DeviceSlotTable
{
    private readonly AdapterVersionKey?[] _occupant;
    private readonly int[] _pins;
    private readonly long[] _lastUse;
    private readonly Dictionary<AdapterVersionKey, int> _slotOf = [];
    private long _clock;
    private volatile AdapterVersionKey[] _resident = [];

    public DeviceSlotTable(int slots)
    {
        if (slots < 1)
            throw new ArgumentOutOfRangeException(nameof(slots), "at least one device slot is required");
        _occupant = new AdapterVersionKey?[slots];
        _pins = new int[slots];
        _lastUse = new long[slots];
    }

    public int Capacity => _occupant.Length;
    public int Evictions { get; private set; }

    /// <summary>Acquisitions that found the adapter's version resident (since start).</summary>
    public int Hits { get; private set; }

    /// <summary>Acquisitions that took a slot the adapter must be copied into (since start).</summary>
    public int Misses { get; private set; }

    /// <summary>
    /// Pins a slot for <paramref name="id"/>. <paramref name="needsLoad"/> is true when the slot was free or evicted and the
    /// adapter's weights must be copied in before use. False when every slot is pinned by other adapters.
    /// </summary>
    public bool TryAcquire(AdapterVersionKey id, out SlotIndex slot, out bool needsLoad)
    {
        _clock++;
        if (_slotOf.TryGetValue(id, out int resident))
        {
            _pins[resident]++;
            _lastUse[resident] = _clock;
            slot = new SlotIndex(resident);
            needsLoad = false;
            Hits++;
            return true;
        }

        int victim = -1;
        for (int s = 0; s < _occupant.Length; s++)
        {
            if (_pins[s] > 0)
                continue;
            if (_occupant[s] is null)
            {
                victim = s;
                break;
            }

            if (victim < 0 || _lastUse[s] < _lastUse[victim])
                victim = s;
        }

        if (victim < 0)
        {
            slot = SlotIndex.BaseModel;
            needsLoad = false;
            return false;
        }

        if (_occupant[victim] is AdapterVersionKey old)
        {
            _slotOf.Remove(old);
            Evictions++;
        }

        _occupant[victim] = id;
        _slotOf[id] = victim;
        _resident = [.. _slotOf.Keys];
        _pins[victim] = 1;
        _lastUse[victim] = _clock;
        slot = new SlotIndex(victim);
        needsLoad = true;
        Misses++;
        return true;
    }

    /// <summary>Undoes a failed load: the slot becomes free again.</summary>
    public void Abandon(SlotIndex slot)
    {
        if (_occupant[slot.Value] is AdapterVersionKey id)
            _slotOf.Remove(id);
        _occupant[slot.Value] = null;
        _resident = [.. _slotOf.Keys];
        _pins[slot.Value] = 0;
    }

    public void Release(SlotIndex slot)
    {
        if (_pins[slot.Value] <= 0)
            throw new InvalidOperationException($"slot {slot} is not pinned");
        _pins[slot.Value]--;
    }

    public AdapterVersionKey? Occupant(SlotIndex slot) => _occupant[slot.Value];

    public int Pins(SlotIndex slot) => _pins[slot.Value];

    public int TotalPins => _pins.Sum();

    /// <summary>Whether a slot holds <paramref name="id"/>; safe from any thread (reads a snapshot taken at each change).</summary>
    public bool IsResident(AdapterVersionKey id) => Array.IndexOf(_resident, id) >= 0;
}
