namespace Serving.Engine.Tokenization;

/// <summary>
/// The BPE merge table of a tokenizer.json <c>model</c>. <see cref="Merge"/> repeatedly applies the lowest-ranked
/// merge among adjacent symbols (a min-heap over candidate pairs, so long words cost O(n log n)), which is what the
/// reference implementation does.
/// </summary>
public sealed class BpeModel
{
    private readonly BpeMergeTable _merges;
    private readonly int[] _charIds = new int[char.MaxValue + 1];

    public BpeModel(IReadOnlyDictionary<string, int> vocab, IEnumerable<(string Left, string Right)> merges)
    {
        Vocab = vocab;
        Array.Fill(_charIds, -1);
        foreach (var (token, id) in vocab)
            if (token.Length == 1 && !char.IsSurrogate(token[0]))
                _charIds[token[0]] = id;
        var known = new List<(int Left, int Right, int Merged, int Rank)>();
        int rank = 0;
        foreach (var (left, right) in merges)
        {
            if (vocab.TryGetValue(left, out int l) && vocab.TryGetValue(right, out int r) && vocab.TryGetValue(left + right, out int m))
                known.Add((l, r, m, rank));
            rank++;
        }

        _merges = new BpeMergeTable(known);
    }

    public IReadOnlyDictionary<string, int> Vocab { get; }

    /// <summary>The id of the one-character token <paramref name="c"/> (not a surrogate), or -1 when there is none.</summary>
    public int CharId(char c) => _charIds[c];

    /// <summary>Merges <paramref name="symbols"/> (vocabulary ids of the initial pieces); returns the final ids.</summary>
    public int[] Merge(List<int> symbols)
    {
        int n = symbols.Count;
        if (n < 2)
            return symbols.ToArray();
        var ids = symbols.ToArray();
        var next = new int[n];
        var prev = new int[n];
        for (int i = 0; i < n; i++)
        {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }

        // A candidate is (rank << 32 | left position). It is stale when its left symbol was merged away (prev set to
        // -2) or the pair at that position now has another rank; ranks name merges uniquely, so an equal rank means
        // the same pair.
        var heap = new LongMinHeap(n);
        for (int i = 0; i < n - 1; i++)
            if (_merges.TryGet(ids[i], ids[i + 1], out int rank, out _))
                heap.Push(((long)rank << 32) | (uint)i);
        while (heap.TryPop(out long candidate))
        {
            int left = (int)candidate;
            int right = prev[left] == -2 ? -1 : next[left];
            if (right < 0 || !_merges.TryGet(ids[left], ids[right], out int rank, out int merged) || rank != (int)(candidate >> 32))
                continue;
            ids[left] = merged;
            int after = next[right];
            next[left] = after;
            prev[right] = -2;
            if (after >= 0)
                prev[after] = left;
            int before = prev[left];
            if (before >= 0 && _merges.TryGet(ids[before], merged, out int beforeRank, out _))
                heap.Push(((long)beforeRank << 32) | (uint)before);
            if (after >= 0 && _merges.TryGet(merged, ids[after], out int afterRank, out _))
                heap.Push(((long)afterRank << 32) | (uint)left);
        }

        int count = 0;
        for (int i = 0; i >= 0; i = next[i])
            count++;
        var result = new int[count];
        count = 0;
        for (int i = 0; i >= 0; i = next[i])
            result[count++] = ids[i];
        return result;
    }
}
