namespace Serving.Engine.Kernels;

/// <summary>
/// Work items [0, n) split into one contiguous range per worker, balanced by estimated cost. A worker takes the items of
/// its own range from the front, in order; once that is empty it takes single items from the back of the range with the
/// most items left, so a wrong estimate costs at most the last item's time, not a waiting worker.
/// <para>
/// Why not one shared counter: the LoRA row kernel's items are in slot order and the arenas hold slots in that order, so
/// a worker that keeps consecutive items reads one ascending stretch of each arena, which the hardware prefetcher
/// follows across item boundaries. Handing items out alternately made each worker jump. Measured on AMD Zen 5 (2 cores),
/// 32 rank-16 bf16 adapters, one row each, the native kernel in C: 4.4 ms per step with a shared counter, 3.8 ms with
/// contiguous ranges (reads alone: 4.3 vs 3.4 ms).
/// </para>
/// Each range is one 64-bit word (<c>end &lt;&lt; 32 | next</c>) changed by compare-and-swap, so an owner and a thief
/// never both take an item. Thread-safe; one instance per parallel region.
/// </summary>
internal sealed class ContiguousWorkRanges
{
    /// <summary>Longs between two ranges' words: each on its own pair of cache lines, so owners do not contend.</summary>
    private const int Stride = 16;

    private long[] _ranges = [];

    /// <param name="costs">Estimated cost of each item (any unit, ≥ 0); the ranges split their sum about evenly.</param>
    /// <param name="workers">Number of ranges (≥ 1); worker w owns range w.</param>
    public ContiguousWorkRanges(ReadOnlySpan<double> costs, int workers) => Reset(costs, workers);

    /// <summary>
    /// Splits a new set of items as the constructor does, reusing this instance's memory (a decode step splits its LoRA
    /// rows once per fused projection); no region may be using the old split.
    /// </summary>
    public void Reset(ReadOnlySpan<double> costs, int workers)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        Workers = workers;
        if (_ranges.Length < workers * Stride)
            _ranges = new long[workers * Stride];
        double total = 0;
        foreach (double c in costs)
            total += Math.Max(0, c);
        int start = 0;
        double sum = 0;
        for (int w = 0; w < workers; w++)
        {
            int end = start;
            if (w == workers - 1)
                end = costs.Length;
            else
            {
                // The range ends where the running sum passes its share; an item straddling the boundary goes to the
                // range it mostly belongs to.
                double target = total * (w + 1) / workers;
                while (end < costs.Length && sum + Math.Max(0, costs[end]) / 2 <= target)
                    sum += Math.Max(0, costs[end++]);
            }

            _ranges[w * Stride] = Pack(start, end);
            start = end;
        }
    }

    public int Workers { get; private set; }

    /// <summary>The next item for <paramref name="worker"/>: its own range's front, else one from the back of another's.</summary>
    public bool TryTake(int worker, out int item)
    {
        ref long own = ref _ranges[worker * Stride];
        while (true)
        {
            long state = Volatile.Read(ref own);
            (int next, int end) = Unpack(state);
            if (next >= end)
                break;
            if (Interlocked.CompareExchange(ref own, Pack(next + 1, end), state) == state)
            {
                item = next;
                return true;
            }
        }

        while (true)
        {
            int victim = -1, most = 0;
            for (int w = 0; w < Workers; w++)
            {
                (int next, int end) = Unpack(Volatile.Read(ref _ranges[w * Stride]));
                if (end - next > most)
                    (victim, most) = (w, end - next);
            }

            if (victim < 0)
            {
                item = -1;
                return false;
            }

            ref long range = ref _ranges[victim * Stride];
            long state = Volatile.Read(ref range);
            (int first, int last) = Unpack(state);
            if (first < last && Interlocked.CompareExchange(ref range, Pack(first, last - 1), state) == state)
            {
                item = last - 1;
                return true;
            }
        }
    }

    private static long Pack(int next, int end) => ((long)end << 32) | (uint)next;

    private static (int Next, int End) Unpack(long state) => ((int)(uint)state, (int)(state >> 32));
}
