namespace Serving.Engine.Model;

/// <summary>
/// One sequence's page tables in a <see cref="KvCache"/>, one per KV group (<see cref="Contracts.Configuration.KvCacheGroups"/>):
/// in group g, position p of the sequence lives in block <c>Group(g)[p / BlockSize]</c> at offset <c>p % BlockSize</c>. A
/// sliding group's entries behind its window may be <see cref="Released"/> (their blocks went back to the pool). The engine
/// never hands out block ids: in serving they come from the scheduler's block allocator (Batching), and a caller running
/// the model alone takes a fixed <see cref="KvCache.Partition"/>. Immutable.
/// </summary>
public sealed class KvBlockTable
{
    /// <summary>An entry whose block went back to the pool: its positions are never read again.</summary>
    public const int Released = -1;

    private readonly int[][] _groups;

    /// <param name="blocks">Block ids in position order, for a cache of one group.</param>
    public KvBlockTable(IEnumerable<int> blocks) => _groups = [[.. blocks]];

    /// <param name="groups">Per KV group, block ids in position order.</param>
    public KvBlockTable(IEnumerable<IEnumerable<int>> groups)
    {
        _groups = [.. groups.Select(g => g.ToArray())];
        if (_groups.Length == 0)
            throw new ArgumentException("a block table has at least one group", nameof(groups));
    }

    public int GroupCount => _groups.Length;

    /// <summary>The blocks of the first group: a one-group cache's whole table.</summary>
    public IReadOnlyList<int> Blocks => _groups[0];

    /// <summary>Group <paramref name="group"/>'s blocks in position order.</summary>
    public IReadOnlyList<int> Group(int group) => _groups[group];

    /// <summary>Positions every group's table reaches.</summary>
    public int Capacity(int blockSize) => _groups.Min(g => g.Length) * blockSize;

    public override string ToString() => _groups.Length == 1 ? Describe(_groups[0]) : string.Join("|", _groups.Select(Describe));

    private static string Describe(int[] blocks) =>
        blocks.Length == 0 ? "kv[]" : blocks.Length <= 4 ? $"kv[{string.Join(",", blocks)}]" : $"kv[{blocks[0]},{blocks[1]},…,{blocks[^1]}]";
}
