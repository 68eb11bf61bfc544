namespace Serving.Engine.Tokenization;

/// <summary>
/// The merges of a BPE model as an open-addressed hash table from a pair of vocabulary ids (left, right) to the merge's
/// rank and the merged id. A long SentencePiece word looks up a pair for every symbol it merges, so the table hashes the
/// packed pair with a multiplicative mix (a general <c>Dictionary</c> keyed by the pair spends most of the word's time
/// hashing and on collisions between packed keys that differ only in their high half).
/// </summary>
/// <remarks>Invariant: the capacity is a power of two at least twice the number of merges, so every probe ends.</remarks>
internal sealed class BpeMergeTable
{
    private const ulong Empty = ulong.MaxValue;
    private readonly ulong[] _keys;
    private readonly long[] _values;
    private readonly int _shift;

    /// <summary>Builds the table; the first merge given for a pair wins, as it does in the reference implementation.</summary>
    /// <param name="merges">(left id, right id, merged id) in rank order; the rank is the position in this list.</param>
    public BpeMergeTable(IReadOnlyList<(int Left, int Right, int Merged, int Rank)> merges)
    {
        int bits = 4;
        while ((1 << bits) < merges.Count * 2)
            bits++;
        _keys = new ulong[1 << bits];
        Array.Fill(_keys, Empty);
        _values = new long[1 << bits];
        _shift = 64 - bits;
        foreach (var (left, right, merged, rank) in merges)
        {
            ulong key = Key(left, right);
            int slot = Slot(key);
            while (_keys[slot] != Empty && _keys[slot] != key)
                slot = (slot + 1) & (_keys.Length - 1);
            if (_keys[slot] == key)
                continue;
            _keys[slot] = key;
            _values[slot] = ((long)rank << 32) | (uint)merged;
        }
    }

    /// <summary>The rank and merged id of the merge of <paramref name="left"/> followed by <paramref name="right"/>.</summary>
    /// <returns>False when the vocabulary has no such merge.</returns>
    public bool TryGet(int left, int right, out int rank, out int merged)
    {
        ulong key = Key(left, right);
        for (int slot = Slot(key); ; slot = (slot + 1) & (_keys.Length - 1))
        {
            ulong found = _keys[slot];
            if (found == key)
            {
                long value = _values[slot];
                rank = (int)(value >> 32);
                merged = (int)value;
                return true;
            }

            if (found == Empty)
            {
                rank = merged = 0;
                return false;
            }
        }
    }

    private static ulong Key(int left, int right) => ((ulong)(uint)left << 32) | (uint)right;

    // Fibonacci hashing: the high bits of key × 2^64/φ spread both halves of the pair over the table.
    private int Slot(ulong key) => (int)((key * 0x9E3779B97F4A7C15UL) >> _shift);
}
