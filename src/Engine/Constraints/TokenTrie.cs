using Serving.Engine.Tokenization;

namespace Serving.Engine.Constraints;

/// <summary>
/// The vocabulary as a byte trie: every token with output bytes (special tokens have none and are left out) ends at the
/// node its bytes spell. Children of a node are contiguous, so a walk is array reads only. Built once per tokenizer and
/// shared by every constraint on it.
/// </summary>
/// <remarks>
/// Node 0 is the root. Tokens with the same bytes (a byte-fallback token and a plain one) end at one node. A trie for a
/// free text that may hold some special tokens (harmony's channel markers) spells each of those as
/// <see cref="SpecialLead"/> and its index among them: bytes no UTF-8 text holds, so a format (whose characters are UTF-8)
/// never admits one, and no ordinary token can spell one, because ordinary tokens holding that byte (byte-level pieces of
/// no valid text) are left out of such a trie.
/// </remarks>
internal sealed class TokenTrie
{
    private TokenTrie(int vocabularySize, byte[] nodeByte, int[] childStart, int[] childCount, int[] tokenStart, int[] tokens, byte[][] tokenBytes)
    {
        VocabularySize = vocabularySize;
        NodeByte = nodeByte;
        ChildStart = childStart;
        ChildCount = childCount;
        TokenStart = tokenStart;
        Tokens = tokens;
        TokenBytes = tokenBytes;
    }

    /// <summary>Width of a mask: the model's logits, which may exceed the tokenizer's ids (padded embedding rows).</summary>
    public int VocabularySize { get; }
    public int MaskWords => (VocabularySize + 63) / 64;
    public byte[] NodeByte { get; }
    public int[] ChildStart { get; }
    public int[] ChildCount { get; }

    /// <summary>Tokens ending at node n are <c>Tokens[TokenStart[n] .. TokenStart[n + 1])</c>.</summary>
    public int[] TokenStart { get; }
    public int[] Tokens { get; }

    /// <summary>Each id's output bytes (empty for special and unused ids; a spelt special's spelling).</summary>
    public byte[][] TokenBytes { get; }
    public int NodeCount => NodeByte.Length;

    /// <summary>The first byte of a special token's spelling (see the remarks); never in UTF-8 text.</summary>
    public const byte SpecialLead = 0xFF;

    /// <summary>The most special tokens one trie spells.</summary>
    public const int MaxSpecials = 256;

    /// <summary>The bytes the special token at <paramref name="index"/> of a trie's specials is spelt with.</summary>
    public static byte[] SpecialBytes(int index) => [SpecialLead, (byte)index];

    /// <param name="tokenizer">The served model's tokenizer.</param>
    /// <param name="vocabularySize">Width of the model's logits.</param>
    /// <param name="specials">Special token ids the trie spells (<see cref="SpecialBytes"/> of their index here); empty: none.</param>
    public static TokenTrie Build(HfTokenizer tokenizer, int vocabularySize, IReadOnlyList<int>? specials = null)
    {
        specials ??= [];
        if (specials.Count > MaxSpecials)
            throw new ArgumentException($"at most {MaxSpecials} special tokens", nameof(specials));
        var bytes = new byte[vocabularySize][];
        var ids = new List<int>();
        for (int id = 0; id < vocabularySize; id++)
        {
            bytes[id] = id < tokenizer.VocabSize && !tokenizer.IsSpecial(id) ? tokenizer.TokenBytes(id) ?? [] : [];
            if (specials.Count > 0 && bytes[id].AsSpan().Contains(SpecialLead))
                bytes[id] = [];
        }

        for (int i = 0; i < specials.Count; i++)
            if ((uint)specials[i] < (uint)vocabularySize)
                bytes[specials[i]] = SpecialBytes(i);
        for (int id = 0; id < vocabularySize; id++)
            if (bytes[id].Length > 0)
                ids.Add(id);

        ids.Sort((a, b) => bytes[a].AsSpan().SequenceCompareTo(bytes[b]) is int c && c != 0 ? c : a.CompareTo(b));
        var nodeByte = new List<byte> { 0 };
        var childStart = new List<int> { 0 };
        var childCount = new List<int> { 0 };
        var tokensAt = new List<List<int>> { new() };
        // A node covers the sorted ids sharing its prefix; its children are allocated as one block before any of them
        // is expanded, which keeps siblings contiguous.
        var work = new Stack<(int Node, int From, int To, int Depth)>();
        work.Push((0, 0, ids.Count, 0));
        while (work.Count > 0)
        {
            var (node, from, to, depth) = work.Pop();
            int i = from;
            while (i < to && bytes[ids[i]].Length == depth)
                tokensAt[node].Add(ids[i++]);
            var groups = new List<(byte B, int From, int To)>();
            while (i < to)
            {
                byte b = bytes[ids[i]][depth];
                int j = i;
                while (j < to && bytes[ids[j]][depth] == b)
                    j++;
                groups.Add((b, i, j));
                i = j;
            }

            childStart[node] = nodeByte.Count;
            childCount[node] = groups.Count;
            foreach (var g in groups)
            {
                int child = nodeByte.Count;
                nodeByte.Add(g.B);
                childStart.Add(0);
                childCount.Add(0);
                tokensAt.Add([]);
                work.Push((child, g.From, g.To, depth + 1));
            }
        }

        var tokenStart = new int[nodeByte.Count + 1];
        for (int n = 0; n < nodeByte.Count; n++)
            tokenStart[n + 1] = tokenStart[n] + tokensAt[n].Count;
        return new TokenTrie(vocabularySize, [.. nodeByte], [.. childStart], [.. childCount], tokenStart, [.. tokensAt.SelectMany(t => t)], bytes);
    }
}
