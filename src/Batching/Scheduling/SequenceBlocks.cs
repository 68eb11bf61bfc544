namespace Serving.Batching.Scheduling;

/// <summary>
/// One sequence's KV block tables, one per group of the <see cref="KvLayout"/>: in group g, position p's KV lives in block
/// <c>this[g][p / BlockSize]</c>. All groups' tables have the same length; a sliding group's entries behind its window are
/// <see cref="Released"/>. Ids come from the <see cref="KvBlockAllocator"/>, which alone grows and releases them.
/// </summary>
public sealed class SequenceBlocks
{
    /// <summary>An entry whose block went back to the pool (the engine's <c>KvBlockTable.Released</c>).</summary>
    public const int Released = -1;

    private readonly List<int>[] _tables;

    public SequenceBlocks(int groups)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(groups, 1);
        _tables = [.. Enumerable.Range(0, groups).Select(_ => new List<int>())];
    }

    public int GroupCount => _tables.Length;

    /// <summary>Group <paramref name="group"/>'s table.</summary>
    public List<int> this[int group] => _tables[group];

    /// <summary>The blocks held (not released), over all groups.</summary>
    public IEnumerable<int> Held => _tables.SelectMany(t => t).Where(b => b != Released);

    /// <summary>A copy of every group's table, as a step hands them to the engine.</summary>
    public IReadOnlyList<IReadOnlyList<int>> Snapshot() => [.. _tables.Select(t => (IReadOnlyList<int>)t.ToArray())];
}
