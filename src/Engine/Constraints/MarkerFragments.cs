namespace Serving.Engine.Constraints;

/// <summary>
/// Fragments around marker strings, for text that is free until a marker: the text before a reasoning end marker
/// (<see cref="UntilFirst"/>), and the free text between structural tags' structures (<see cref="Avoiding"/>). Both are
/// deterministic string-matching automata, so no text is read two ways.
/// </summary>
internal static class MarkerFragments
{
    /// <summary>
    /// Any bytes up to and including the first occurrence of <paramref name="marker"/>: the marker's string-matching
    /// automaton (Knuth–Morris–Pratt), state q having matched its first q bytes, every byte that breaks a match falling
    /// back to the longest prefix still matched. Deterministic, so no text ends here in two ways.
    /// </summary>
    public static NfaFragment UntilFirst(this ByteNfa nfa, ReadOnlySpan<byte> marker)
    {
        if (marker.IsEmpty)
            return nfa.Empty();
        int k = marker.Length;
        var fallback = new int[k];                     // fallback[q]: the longest proper border of marker[..q]
        for (int q = 1, border = 0; q < k; q++)
        {
            while (border > 0 && marker[q] != marker[border])
                border = fallback[border];
            if (marker[q] == marker[border])
                border++;
            if (q + 1 < k)
                fallback[q + 1] = border;
        }

        var states = new int[k + 1];
        for (int q = 0; q <= k; q++)
            states[q] = nfa.NewState();
        var next = new int[256];
        for (int q = 0; q < k; q++)
        {
            for (int b = 0; b < 256; b++)
            {
                int at = q;
                while (at > 0 && marker[at] != b)
                    at = fallback[at];
                next[b] = marker[at] == b ? at + 1 : 0;
            }

            for (int lo = 0; lo < 256;)
            {
                int hi = lo;
                while (hi + 1 < 256 && next[hi + 1] == next[lo])
                    hi++;
                nfa.Edge(states[q], (byte)lo, (byte)hi, states[next[lo]]);
                lo = hi + 1;
            }
        }

        return new NfaFragment(states[0], states[k]);
    }

    /// <summary>
    /// Any bytes in which none of <paramref name="markers"/> occurs: a state per proper prefix of a marker (the longest
    /// such suffix of the bytes so far, as Aho–Corasick tracks it), a byte that would complete a marker leading nowhere.
    /// Deterministic; every state may end the text.
    /// </summary>
    public static NfaFragment Avoiding(this ByteNfa nfa, IReadOnlyList<byte[]> markers)
    {
        var prefixes = new List<byte[]> { Array.Empty<byte>() };
        var index = new Dictionary<string, int>(StringComparer.Ordinal) { [""] = 0 };
        foreach (var marker in markers)
            for (int length = 1; length < marker.Length; length++)
                if (index.TryAdd(Convert.ToHexString(marker, 0, length), prefixes.Count))
                    prefixes.Add(marker[..length]);
        bool Completes(byte[] text) => markers.Any(m => text.AsSpan().EndsWith(m));
        int Longest(byte[] text)
        {
            for (int from = 0; from <= text.Length; from++)
                if (index.TryGetValue(Convert.ToHexString(text, from, text.Length - from), out int state))
                    return state;
            return 0;
        }

        var states = prefixes.Select(_ => nfa.NewState()).ToArray();
        int end = nfa.NewState();
        var next = new int[256];
        for (int q = 0; q < prefixes.Count; q++)
        {
            nfa.Epsilon(states[q], end);
            for (int b = 0; b < 256; b++)
            {
                byte[] text = [.. prefixes[q], (byte)b];
                next[b] = Completes(text) ? -1 : Longest(text);
            }

            for (int lo = 0; lo < 256;)
            {
                int hi = lo;
                while (hi + 1 < 256 && next[hi + 1] == next[lo])
                    hi++;
                if (next[lo] >= 0)
                    nfa.Edge(states[q], (byte)lo, (byte)hi, states[next[lo]]);
                lo = hi + 1;
            }
        }

        return new NfaFragment(states[0], end);
    }
}
