namespace Serving.Engine.Tokenization;

/// <summary>
/// A binary min-heap of 64-bit keys in one growable array. BPE packs a candidate merge as (rank &lt;&lt; 32 | position),
/// so the smallest key is the lowest rank and, among equal ranks, the leftmost pair — the order the reference applies
/// merges in — and no element or priority object is allocated per candidate.
/// </summary>
internal sealed class LongMinHeap(int capacity)
{
    private long[] _items = new long[Math.Max(4, capacity)];
    private int _count;

    public void Push(long key)
    {
        if (_count == _items.Length)
            Array.Resize(ref _items, _items.Length * 2);
        int i = _count++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (_items[parent] <= key)
                break;
            _items[i] = _items[parent];
            i = parent;
        }

        _items[i] = key;
    }

    /// <summary>Removes and returns the smallest key; false when the heap is empty.</summary>
    public bool TryPop(out long key)
    {
        if (_count == 0)
        {
            key = 0;
            return false;
        }

        key = _items[0];
        long last = _items[--_count];
        int i = 0;
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= _count)
                break;
            if (child + 1 < _count && _items[child + 1] < _items[child])
                child++;
            if (last <= _items[child])
                break;
            _items[i] = _items[child];
            i = child;
        }

        if (_count > 0)
            _items[i] = last;
        return true;
    }
}
