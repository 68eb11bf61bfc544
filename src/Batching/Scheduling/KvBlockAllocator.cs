namespace Serving.Batching.Scheduling;

/// <summary>
/// The owner of KV block ids: the engine's paged cache is storage addressed by the ids handed out here, and nothing else
/// hands them out. A block holds <see cref="BlockSize"/> consecutive token positions of one sequence; a sequence of n
/// cached tokens holds ⌈n / BlockSize⌉ blocks, in order, as its block table.
/// <para>
/// Blocks are reference-counted so that one block can later be read by several sequences (a shared prefix): a block
/// returns to the free pool when its last holder releases it. A block is free exactly when its count is zero.
/// </para>
/// Not thread-safe: the scheduler calls it on the engine loop. <see cref="UsedBlocks"/> may be read from any thread.
/// </summary>
public sealed class KvBlockAllocator
{
    private readonly int[] _references;
    private readonly Stack<int> _free;
    private volatile int _used;

    /// <param name="totalBlocks">Blocks in the pool; ids are 0 … totalBlocks − 1.</param>
    /// <param name="blockSize">Token positions per block.</param>
    public KvBlockAllocator(int totalBlocks, int blockSize)
    {
        if (totalBlocks < 1 || blockSize < 1)
            throw new ArgumentOutOfRangeException(nameof(totalBlocks), "the KV cache needs at least one block of at least one token");
        BlockSize = blockSize;
        _references = new int[totalBlocks];
        // Lowest ids first, so a fresh cache fills its storage from the front.
        _free = new Stack<int>(Enumerable.Range(0, totalBlocks).Reverse());
    }

    public int TotalBlocks => _references.Length;
    public int BlockSize { get; }

    /// <summary>Blocks held by at least one sequence.</summary>
    public int UsedBlocks => _used;

    public int FreeBlocks => TotalBlocks - _used;

    /// <summary>Blocks a sequence of <paramref name="tokens"/> cached positions holds.</summary>
    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>Holders of <paramref name="block"/> (0 = free).</summary>
    public int References(int block) => _references[block];

    /// <summary>
    /// Appends <paramref name="count"/> free blocks, each with one reference, to <paramref name="table"/>; when fewer are
    /// free, takes none and returns false.
    /// </summary>
    public bool TryAllocate(int count, List<int> table)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > _free.Count)
            return false;
        for (int i = 0; i < count; i++)
        {
            int block = _free.Pop();
            _references[block] = 1;
            table.Add(block);
        }

        _used += count;
        return true;
    }

    /// <summary>One more holder of a block that is in use.</summary>
    public void Retain(int block)
    {
        if (_references[block] == 0)
            throw new InvalidOperationException($"KV block {block} is free; only a block in use can be shared");
        _references[block]++;
    }

    /// <summary>Drops one reference to each block of <paramref name="table"/> and empties it; blocks nobody holds become free.</summary>
    public void Release(List<int> table)
    {
        foreach (int block in table)
        {
            if (_references[block] == 0)
                throw new InvalidOperationException($"KV block {block} released more often than it was held");
            if (--_references[block] == 0)
            {
                _free.Push(block);
                _used--;
            }
        }

        table.Clear();
    }
}
