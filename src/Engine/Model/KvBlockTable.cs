namespace Serving.Engine.Model;

/// <summary>
/// One sequence's page table in a <see cref="KvCache"/>: position p of the sequence lives in block <c>Blocks[p / BlockSize]</c>
/// at offset <c>p % BlockSize</c>. The engine never hands out block ids: in serving they come from the scheduler's block
/// allocator (Batching), and a caller running the model alone takes a fixed <see cref="KvCache.Partition"/>. Immutable.
/// </summary>
public sealed class KvBlockTable
{
    private readonly int[] _blocks;

    /// <param name="blocks">Block ids in position order.</param>
    public KvBlockTable(IEnumerable<int> blocks) => _blocks = [.. blocks];

    public IReadOnlyList<int> Blocks => _blocks;

    /// <summary>Positions the table can hold.</summary>
    public int Capacity(int blockSize) => _blocks.Length * blockSize;

    public override string ToString() =>
        _blocks.Length == 0 ? "kv[]" : _blocks.Length <= 4 ? $"kv[{string.Join(",", _blocks)}]" : $"kv[{_blocks[0]},{_blocks[1]},…,{_blocks[^1]}]";
}
