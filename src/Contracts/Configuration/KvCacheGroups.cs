namespace Serving.Contracts.Configuration;

/// <summary>
/// How the layers of a model share the paged KV cache's block ids (vLLM's hybrid KV cache manager). The layers are split
/// into groups of one attention kind and of one size G (<see cref="LayersPerGroup"/>); block b of group g holds the K/V of
/// G layers, the j-th layer of every group in storage slot j, so a block costs the same whatever its group and all groups
/// draw from one pool. Each group has its own block table per sequence. A whole-context group holds every position of a
/// sequence; a sliding group needs only the positions its window still reaches, so the blocks behind the window go back to
/// the pool as the sequence grows (gpt-oss: half its layers see 128 positions; Gemma 3: five layers in six see 1,024).
/// A model whose layers all attend alike has one group of all its layers: the cache as it was before groups.
/// <para>Invariants: every layer is in exactly one group, at one slot; each group holds ≤ G layers (the last of a kind may
/// hold fewer, leaving its blocks' other slots unused); groups of one kind are in layer order.</para>
/// </summary>
public sealed class KvCacheGroups
{
    private readonly int[] _groupOf, _slotOf;

    private KvCacheGroups(IReadOnlyList<IReadOnlyList<int>> layers, IReadOnlyList<int?> windows, int layerCount)
    {
        Layers = layers;
        Windows = windows;
        LayersPerGroup = layers.Max(g => g.Count);
        _groupOf = new int[layerCount];
        _slotOf = new int[layerCount];
        for (int g = 0; g < layers.Count; g++)
            for (int j = 0; j < layers[g].Count; j++)
                (_groupOf[layers[g][j]], _slotOf[layers[g][j]]) = (g, j);
    }

    /// <summary>Per group, its layers, ascending.</summary>
    public IReadOnlyList<IReadOnlyList<int>> Layers { get; }

    /// <summary>Per group, the window of its layers (positions a token attends to, itself included), or null: the whole context.</summary>
    public IReadOnlyList<int?> Windows { get; }

    /// <summary>G: the layers one block holds (the storage slots).</summary>
    public int LayersPerGroup { get; }

    public int Count => Layers.Count;

    /// <summary>Whether any group lets blocks behind its window go.</summary>
    public bool Slides => Windows.Any(w => w is not null);

    public int GroupOf(int layer) => _groupOf[layer];

    /// <summary>The storage slot of <paramref name="layer"/> within its group's blocks.</summary>
    public int SlotOf(int layer) => _slotOf[layer];

    /// <summary>Whether these are groups of exactly layers 0 … <paramref name="layers"/> − 1.</summary>
    public bool Covers(int layers) => _groupOf.Length == layers;

    /// <summary>The first position group <paramref name="group"/> must still hold for a token at <paramref name="position"/>.</summary>
    public int FirstHeld(int group, int position) => Windows[group] is int w ? Math.Max(0, position - w + 1) : 0;

    /// <summary>
    /// Groups as given: <paramref name="layers"/> per group (together every layer 0 … n − 1 once) with the window of each
    /// (<paramref name="windows"/>, null: whole context).
    /// </summary>
    public static KvCacheGroups Of(IReadOnlyList<IReadOnlyList<int>> layers, IReadOnlyList<int?> windows)
    {
        int n = layers.Sum(g => g.Count);
        if (layers.Count == 0 || layers.Count != windows.Count || layers.Any(g => g.Count == 0)
            || !layers.SelectMany(g => g).Order().SequenceEqual(Enumerable.Range(0, n)) || windows.Any(w => w is < 1))
            throw new ArgumentException("KV groups hold every layer once, in non-empty groups, each with a positive window or none", nameof(layers));
        return new KvCacheGroups(layers, windows, n);
    }

    /// <summary>One group of <paramref name="layers"/> layers attending to the whole context: no block is freed early.</summary>
    public static KvCacheGroups Single(int layers)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(layers, 1);
        return new KvCacheGroups([[.. Enumerable.Range(0, layers)]], [null], layers);
    }

    /// <summary>
    /// The groups of <paramref name="config"/>'s layers: with <paramref name="hybrid"/> and some sliding layers, whole-context
    /// and sliding layers apart, G the smaller kind's count (vLLM's choice: no group of the smaller kind is padded); else
    /// <see cref="Single"/>.
    /// </summary>
    public static KvCacheGroups For(ModelConfig config, bool hybrid = true)
    {
        int n = config.NumLayers;
        if (!hybrid || config.SlidingWindow is not int window)
            return Single(n);
        var full = Enumerable.Range(0, n).Where(l => config.WindowOf(l) is null).ToList();
        var sliding = Enumerable.Range(0, n).Where(l => config.WindowOf(l) is not null).ToList();
        if (full.Count == 0)
            return new KvCacheGroups([sliding], [window], n);
        int size = Math.Min(full.Count, sliding.Count);
        var layers = new List<IReadOnlyList<int>>();
        var windows = new List<int?>();
        foreach (var (kind, kindWindow) in new[] { (full, (int?)null), (sliding, window) })
            foreach (var chunk in kind.Chunk(size))
            {
                layers.Add(chunk);
                windows.Add(kindWindow);
            }

        return new KvCacheGroups(layers, windows, n);
    }

    public override string ToString() =>
        Count == 1 ? $"1 group of {LayersPerGroup} layers" + (Windows[0] is int w ? $" (window {w})" : "")
        : $"{Count} groups of ≤ {LayersPerGroup} layers ({Windows.Count(w => w is null)} whole-context, {Windows.Count(w => w is not null)} sliding, window {Windows.First(w => w is not null)})";
}
