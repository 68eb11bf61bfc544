using Serving.Batching.PrefixCaching;

namespace Serving.Batching.Scheduling;

/// <summary>
/// The owner of KV block ids: the engine's paged cache is storage addressed by the ids handed out here, and nothing else
/// hands them out. A block holds <see cref="BlockSize"/> consecutive token positions of one sequence; a sequence of n
/// cached tokens holds ⌈n / BlockSize⌉ blocks, in order, as its block table.
/// <para>
/// Blocks are reference-counted so that one block can be read by several sequences (a shared prefix). A full block
/// registered under a <see cref="PrefixBlockKey"/> stays cached when its last holder releases it: unreferenced, it waits in
/// least-recently-used order to be reused by a sequence with the same key, or taken back (its key forgotten) when a
/// sequence needs a block and none is free. Cached unreferenced blocks therefore count as free: the cache never keeps a
/// block a running sequence needs. A block is in use exactly when its count is above zero.
/// </para>
/// <para>
/// With KV groups (<see cref="Layout"/>) a sequence holds one table per group (<see cref="SequenceBlocks"/>), all from this one
/// pool, and a block is cached under its key and its group (block i of two groups holds different layers' KV).
/// </para>
/// Not thread-safe: the scheduler calls it on the engine loop. <see cref="UsedBlocks"/> may be read from any thread.
/// </summary>
public sealed class KvBlockAllocator
{
    private readonly int[] _references;
    private readonly Stack<int> _free;
    private readonly (PrefixBlockKey Key, int Group)?[] _keyOf;
    private readonly Dictionary<(PrefixBlockKey Key, int Group), int> _blockOf = [];
    private readonly LinkedList<int> _evictable = new();                 // cached, unreferenced: least recently used first
    private readonly LinkedListNode<int>?[] _evictableNode;
    private volatile int _used;

    /// <param name="totalBlocks">Blocks in the pool; ids are 0 … totalBlocks − 1.</param>
    /// <param name="blockSize">Token positions per block.</param>
    public KvBlockAllocator(int totalBlocks, int blockSize)
        : this(totalBlocks, KvLayout.Single(blockSize))
    {
    }

    /// <param name="totalBlocks">Blocks in the pool; ids are 0 … totalBlocks − 1.</param>
    /// <param name="layout">The block size and the KV groups every sequence's tables follow.</param>
    public KvBlockAllocator(int totalBlocks, KvLayout layout)
    {
        if (totalBlocks < 1 || layout.BlockSize < 1 || layout.GroupCount < 1)
            throw new ArgumentOutOfRangeException(nameof(totalBlocks), "the KV cache needs at least one block of at least one token");
        Layout = layout;
        _references = new int[totalBlocks];
        // Lowest ids first, so a fresh cache fills its storage from the front.
        _free = new Stack<int>(Enumerable.Range(0, totalBlocks).Reverse());
        _keyOf = new (PrefixBlockKey, int)?[totalBlocks];
        _evictableNode = new LinkedListNode<int>?[totalBlocks];
    }

    public int TotalBlocks => _references.Length;

    /// <summary>The shape of every sequence's tables.</summary>
    public KvLayout Layout { get; }

    public int BlockSize => Layout.BlockSize;

    /// <summary>Blocks held by at least one sequence.</summary>
    public int UsedBlocks => _used;

    /// <summary>Blocks a sequence can get now: never used, or cached and unreferenced.</summary>
    public int FreeBlocks => TotalBlocks - _used;

    /// <summary>Blocks registered under a prefix key, referenced or not.</summary>
    public int CachedBlocks => _blockOf.Count;

    /// <summary>The key <paramref name="block"/> is cached under, or null.</summary>
    public PrefixBlockKey? KeyOf(int block) => _keyOf[block]?.Key;

    /// <summary>The group <paramref name="block"/> is cached for, or null.</summary>
    public int? CachedGroupOf(int block) => _keyOf[block]?.Group;

    /// <summary>Blocks a sequence of <paramref name="tokens"/> cached positions holds.</summary>
    public int BlocksFor(int tokens) => Layout.BlocksFor(tokens);

    /// <summary>Holders of <paramref name="block"/> (0 = free).</summary>
    public int References(int block) => _references[block];

    /// <summary>
    /// Appends <paramref name="count"/> free blocks, each with one reference, to <paramref name="table"/>; when fewer are
    /// free, takes none and returns false.
    /// </summary>
    public bool TryAllocate(int count, List<int> table)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > FreeBlocks)
            return false;
        for (int i = 0; i < count; i++)
        {
            int block = _free.Count > 0 ? _free.Pop() : Evict();
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

    /// <summary>
    /// Drops one reference to each block of <paramref name="table"/> (entries already <see cref="SequenceBlocks.Released"/>
    /// skipped) and empties it; blocks nobody holds become free.
    /// </summary>
    public void Release(List<int> table)
    {
        foreach (int block in table)
            if (block != SequenceBlocks.Released)
                Drop(block);
        table.Clear();
    }

    /// <summary>Releases every group's table of <paramref name="tables"/>.</summary>
    public void Release(SequenceBlocks tables)
    {
        for (int g = 0; g < tables.GroupCount; g++)
            Release(tables[g]);
    }

    /// <summary>Blocks <paramref name="tables"/> must add, over all groups, to hold positions up to <paramref name="end"/>.</summary>
    public int Needed(SequenceBlocks tables, int end)
    {
        int need = 0, blocks = Layout.BlocksFor(end);
        for (int g = 0; g < tables.GroupCount; g++)
            need += Math.Max(0, blocks - tables[g].Count);
        return need;
    }

    /// <summary>Grows every group's table of <paramref name="tables"/> to hold positions up to <paramref name="end"/>; when too few blocks are free, takes none and returns false.</summary>
    public bool TryGrow(SequenceBlocks tables, int end)
    {
        if (Needed(tables, end) > FreeBlocks)
            return false;
        int blocks = Layout.BlocksFor(end);
        for (int g = 0; g < tables.GroupCount; g++)
            TryAllocate(Math.Max(0, blocks - tables[g].Count), tables[g]);
        return true;
    }

    /// <summary>
    /// Releases the blocks of <paramref name="tables"/>' sliding groups that lie wholly behind the window of a token at
    /// <paramref name="position"/> (the sequence's next), marking their entries <see cref="SequenceBlocks.Released"/>; returns how many.
    /// Released entries always form a prefix of a table.
    /// </summary>
    public int ReleaseBehind(SequenceBlocks tables, int position)
    {
        int released = 0;
        for (int g = 0; g < tables.GroupCount; g++)
        {
            var table = tables[g];
            for (int b = Math.Min(Layout.FirstHeldBlock(g, position), table.Count) - 1; b >= 0 && table[b] != SequenceBlocks.Released; b--)
            {
                Drop(table[b]);
                table[b] = SequenceBlocks.Released;
                released++;
            }
        }

        return released;
    }

    private void Drop(int block)
    {
        if (_references[block] == 0)
            throw new InvalidOperationException($"KV block {block} released more often than it was held");
        if (--_references[block] == 0)
        {
            if (_keyOf[block] is not null)
                _evictableNode[block] = _evictable.AddLast(block);
            else
                _free.Push(block);
            _used--;
        }
    }

    /// <summary>The block cached under <paramref name="key"/> for group <paramref name="group"/>, referenced or not; null if none.</summary>
    public int? Cached(PrefixBlockKey key, int group) => _blockOf.TryGetValue((key, group), out int block) ? block : null;

    /// <summary>Appends a cached <paramref name="block"/> to <paramref name="table"/> with one more reference (back in use if nobody held it).</summary>
    public void Take(int block, List<int> table)
    {
        if (_keyOf[block] is null)
            throw new InvalidOperationException($"KV block {block} is not cached; only cached blocks are taken for reuse");
        if (_references[block]++ == 0)
        {
            _evictable.Remove(_evictableNode[block]!);
            _evictableNode[block] = null;
            _used++;
        }

        table.Add(block);
    }

    /// <summary>
    /// Caches <paramref name="block"/> (in use, fully written) under <paramref name="key"/> for group <paramref name="group"/>.
    /// A block already cached, or a key another block is cached under, is left as it is: the first block to hold a prefix
    /// serves it.
    /// </summary>
    public void Register(int block, PrefixBlockKey key, int group = 0)
    {
        if (_references[block] == 0)
            throw new InvalidOperationException($"KV block {block} is free; only a block in use can be cached");
        if (_keyOf[block] is not null || !_blockOf.TryAdd((key, group), block))
            return;
        _keyOf[block] = (key, group);
    }

    /// <summary>Takes back the least recently used cached unreferenced block, forgetting its key.</summary>
    private int Evict()
    {
        int block = _evictable.First!.Value;
        _evictable.RemoveFirst();
        _evictableNode[block] = null;
        _blockOf.Remove(_keyOf[block]!.Value);
        _keyOf[block] = null;
        return block;
    }
}
