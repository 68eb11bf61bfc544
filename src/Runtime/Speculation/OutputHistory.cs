namespace Serving.Runtime.Speculation;

/// <summary>
/// One tenant's recent outputs (under one <c>cache_salt</c>), indexed for drafting: every run of
/// <see cref="PatternTokens"/> tokens maps to its most recent occurrence, so a new request that starts writing what an
/// earlier one wrote (an agent's repeated tool call, a template filled again) is drafted the rest of it. Each text is the
/// earlier prompt's last tokens followed by its output, so a match can begin with the output's first token. Engine loop only.
/// </summary>
internal sealed class OutputHistory
{
    /// <summary>Tokens a lookup matches: the sequence's last three.</summary>
    public const int PatternTokens = 3;

    private readonly record struct Pattern(int A, int B, int C);

    private readonly Dictionary<Pattern, (int[] Text, int End)> _latest = [];
    private readonly Queue<int[]> _texts = new();

    /// <summary>Tokens held in this history's texts.</summary>
    public long Tokens { get; private set; }

    public bool IsEmpty => _texts.Count == 0;

    /// <summary>Adds a text (prompt tail, then output); its patterns now point at it.</summary>
    public void Add(int[] text)
    {
        _texts.Enqueue(text);
        Tokens += text.Length;
        for (int end = PatternTokens; end < text.Length; end++)
            _latest[At(text, end)] = (text, end);
    }

    /// <summary>Forgets the oldest text, and the patterns that still pointed at it; returns its length.</summary>
    public int RemoveOldest()
    {
        var text = _texts.Dequeue();
        Tokens -= text.Length;
        for (int end = PatternTokens; end < text.Length; end++)
            if (_latest.TryGetValue(At(text, end), out var entry) && ReferenceEquals(entry.Text, text))
                _latest.Remove(At(text, end));
        return text.Length;
    }

    /// <summary>What followed the most recent earlier occurrence of <paramref name="sequence"/>'s last tokens, into <paramref name="drafts"/>; how many.</summary>
    public int Propose(ReadOnlySpan<int> sequence, Span<int> drafts)
    {
        if (sequence.Length < PatternTokens || !_latest.TryGetValue(new Pattern(sequence[^3], sequence[^2], sequence[^1]), out var found))
            return 0;
        int count = Math.Min(drafts.Length, found.Text.Length - found.End);
        found.Text.AsSpan(found.End, count).CopyTo(drafts);
        return count;
    }

    /// <summary>The pattern ending before position <paramref name="end"/>.</summary>
    private static Pattern At(int[] text, int end) => new(text[end - 3], text[end - 2], text[end - 1]);
}
