namespace Serving.Engine.Model;

/// <summary>
/// One sequence's page table in a <see cref="KvCache"/>: position p of the sequence lives in block <c>Blocks[p / BlockSize]</c>
/// at offset <c>p % BlockSize</c>. Grows a block at a time as the sequence does; returned to the cache whole.
/// </summary>
internal sealed class KvBlockTable
{
    private readonly List<int> _blocks = [];

    internal KvBlockTable(int id) => Id = id;

    /// <summary>Unique per cache while allocated; names the sequence in errors.</summary>
    public int Id { get; }
    public IReadOnlyList<int> Blocks => _blocks;
    internal bool Released { get; set; }

    internal void Add(int block) => _blocks.Add(block);
    internal void Clear() => _blocks.Clear();

    public override string ToString() => $"kv#{Id}";
}
