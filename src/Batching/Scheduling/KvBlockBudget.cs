namespace Serving.Batching.Scheduling;

/// <summary>
/// KV memory accounting in fixed-size blocks of tokens: a sequence of n cached tokens holds ⌈n / BlockSize⌉ blocks. The
/// scheduler reserves blocks before a step writes them and releases them when a sequence ends or is preempted; the engine's
/// paged cache allocates the same counts, so both agree block for block (checked after every step).
/// </summary>
internal sealed class KvBlockBudget
{
    public KvBlockBudget(int totalBlocks, int blockSize)
    {
        if (totalBlocks < 1 || blockSize < 1)
            throw new ArgumentOutOfRangeException(nameof(totalBlocks), "the KV budget needs at least one block of at least one token");
        TotalBlocks = totalBlocks;
        BlockSize = blockSize;
    }

    public int TotalBlocks { get; }
    public int BlockSize { get; }
    public int UsedBlocks { get; private set; }
    public int FreeBlocks => TotalBlocks - UsedBlocks;

    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    public bool TryReserve(int blocks)
    {
        if (blocks > FreeBlocks)
            return false;
        UsedBlocks += blocks;
        return true;
    }

    public void Release(int blocks)
    {
        if (blocks < 0 || blocks > UsedBlocks)
            throw new InvalidOperationException($"releasing {blocks} KV blocks but only {UsedBlocks} are in use");
        UsedBlocks -= blocks;
    }
}
