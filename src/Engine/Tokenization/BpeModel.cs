namespace Serving.Engine.Tokenization;

/// <summary>
/// The BPE merge table of a tokenizer.json <c>model</c>. <see cref="Merge"/> repeatedly applies the lowest-ranked
/// merge among adjacent symbols (a min-heap over candidate pairs, so long words cost O(n log n)), which is what the
/// reference implementation does.
/// </summary>
internal sealed class BpeModel
{
    private readonly Dictionary<(int Left, int Right), (int Rank, int Merged)> _merges;

    public BpeModel(IReadOnlyDictionary<string, int> vocab, IEnumerable<(string Left, string Right)> merges)
    {
        Vocab = vocab;
        _merges = [];
        int rank = 0;
        foreach (var (left, right) in merges)
        {
            if (vocab.TryGetValue(left, out int l) && vocab.TryGetValue(right, out int r) && vocab.TryGetValue(left + right, out int m))
                _merges.TryAdd((l, r), (rank, m));
            rank++;
        }
    }

    public IReadOnlyDictionary<string, int> Vocab { get; }

    /// <summary>Merges <paramref name="symbols"/> (vocabulary ids of the initial pieces) in place; returns the final ids.</summary>
    public int[] Merge(List<int> symbols)
    {
        int n = symbols.Count;
        if (n < 2)
            return symbols.ToArray();
        var ids = symbols.ToArray();
        var next = new int[n];
        var prev = new int[n];
        var alive = new bool[n];
        for (int i = 0; i < n; i++)
        {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
            alive[i] = true;
        }

        var heap = new PriorityQueue<(int Left, int LeftId, int RightId), (int Rank, int Pos)>();
        void Consider(int left)
        {
            int right = next[left];
            if (right >= 0 && _merges.TryGetValue((ids[left], ids[right]), out var m))
                heap.Enqueue((left, ids[left], ids[right]), (m.Rank, left));
        }

        for (int i = 0; i < n - 1; i++)
            Consider(i);
        while (heap.TryDequeue(out var item, out _))
        {
            int left = item.Left;
            int right = alive[left] ? next[left] : -1;
            if (right < 0 || ids[left] != item.LeftId || ids[right] != item.RightId)
                continue;
            ids[left] = _merges[(item.LeftId, item.RightId)].Merged;
            alive[right] = false;
            next[left] = next[right];
            if (next[right] >= 0)
                prev[next[right]] = left;
            if (prev[left] >= 0)
                Consider(prev[left]);
            Consider(left);
        }

        var result = new List<int>(n);
        for (int i = 0; i >= 0; i = next[i])
            result.Add(ids[i]);
        return result.ToArray();
    }
}
