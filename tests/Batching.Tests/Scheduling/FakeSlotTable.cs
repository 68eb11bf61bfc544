using Serving.Contracts;

namespace Serving.Batching.Tests.Scheduling;

/// <summary>
/// Device slots as the scheduler sees them: an adapter version pins a slot while requests use it; an unpinned slot
/// goes to the next version, least recently used first. (The store's own table is tested in AdapterStore.Tests; the
/// scheduler's tests need only its contract, and Batching's tests build on Contracts alone.)
/// </summary>
internal sealed class FakeSlotTable(int slots)
{
    private readonly AdapterVersionKey?[] _occupant = new AdapterVersionKey?[slots];
    private readonly int[] _pins = new int[slots];
    private readonly long[] _lastUse = new long[slots];
    private long _clock;

    public int Capacity => _occupant.Length;

    public int TotalPins => _pins.Sum();

    public int Pins(SlotIndex slot) => _pins[slot.Value];

    /// <summary>Pins the slot holding <paramref name="key"/>, or the least recently used unpinned one; false when all are pinned.</summary>
    public bool TryAcquire(AdapterVersionKey key, out SlotIndex slot)
    {
        _clock++;
        int chosen = Array.IndexOf(_occupant, key);
        if (chosen < 0)
        {
            for (int s = 0; s < _occupant.Length && (chosen < 0 || _occupant[chosen] is not null); s++)
                if (_pins[s] == 0 && (chosen < 0 || _occupant[s] is null || _lastUse[s] < _lastUse[chosen]))
                    chosen = s;
        }

        if (chosen < 0)
        {
            slot = SlotIndex.BaseModel;
            return false;
        }

        _occupant[chosen] = key;
        _pins[chosen]++;
        _lastUse[chosen] = _clock;
        slot = new SlotIndex(chosen);
        return true;
    }

    public void Release(SlotIndex slot)
    {
        if (_pins[slot.Value] <= 0)
            throw new InvalidOperationException($"slot {slot} is not pinned");
        _pins[slot.Value]--;
    }
}
