namespace Serving.Engine.Generation;

/// <summary>
/// Finds stop strings in generated text even when they span several tokens. Text that could still turn out to be the
/// start of a stop string is held back, so a stream never shows text that is later cut off.
/// </summary>
internal sealed class StopStringMatcher(IReadOnlyList<string> stops)
{
    private readonly System.Text.StringBuilder _text = new();
    private int _emitted;

    public bool Stopped { get; private set; }

    /// <summary>Appends new text; returns the part that is now safe to show. After a stop matched, returns text up to it and sets <see cref="Stopped"/>.</summary>
    public string Append(string delta)
    {
        if (Stopped)
            return "";
        int searchFrom = Math.Max(0, _text.Length - stops.Select(s => s.Length).DefaultIfEmpty(0).Max() + 1);
        _text.Append(delta);
        if (stops.Count == 0)
            return Take(_text.Length);
        string all = _text.ToString();
        int first = -1;
        foreach (string stop in stops)
        {
            int at = all.IndexOf(stop, searchFrom, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first))
                first = at;
        }

        if (first >= 0)
        {
            Stopped = true;
            return Take(Math.Max(first, _emitted));
        }

        int holdBack = 0;
        foreach (string stop in stops)
            for (int len = Math.Min(stop.Length - 1, all.Length); len > holdBack; len--)
                if (string.CompareOrdinal(all, all.Length - len, stop, 0, len) == 0)
                {
                    holdBack = len;
                    break;
                }

        return Take(all.Length - holdBack);
    }

    /// <summary>At the end of generation, the held-back text is no longer a possible stop prefix.</summary>
    public string Flush() => Stopped ? "" : Take(_text.Length);

    private string Take(int upTo)
    {
        if (upTo <= _emitted)
            return "";
        string s = _text.ToString(_emitted, upTo - _emitted);
        _emitted = upTo;
        return s;
    }
}
