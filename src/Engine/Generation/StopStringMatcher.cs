namespace Serving.Engine.Generation;

/// <summary>
/// Finds stop strings in generated text even when they span several tokens. Text that could still turn out to be the
/// start of a stop string is held back, so a stream never shows text that is later cut off.
/// </summary>
/// <param name="stops">The stop strings; the earliest match ends the text.</param>
/// <param name="includeStop">Whether the text keeps the stop string that matched (vLLM's <c>include_stop_str_in_output</c>).</param>
internal sealed class StopStringMatcher(IReadOnlyList<string> stops, bool includeStop = false)
{
    private readonly System.Text.StringBuilder _text = new();
    private int _emitted;

    public bool Stopped { get; private set; }

    /// <summary>Characters of the longest stop string: how far back from the end a new match can start.</summary>
    private readonly int _longest = stops.Count == 0 ? 0 : stops.Max(s => s.Length);

    /// <summary>Appends new text; returns the part that is now safe to show. After a stop matched, returns text up to it and sets <see cref="Stopped"/>.</summary>
    public string Append(string delta)
    {
        if (Stopped)
            return "";
        // Only the text a stop string could still end in is searched: copying all of it every token made a long
        // generation's stop checks quadratic in its length.
        int searchFrom = Math.Max(0, _text.Length - _longest + 1);
        _text.Append(delta);
        if (stops.Count == 0)
            return Take(_text.Length);
        string tail = _text.ToString(searchFrom, _text.Length - searchFrom);
        int first = -1, matched = 0;
        for (int i = 0; i < stops.Count; i++)
        {
            int at = tail.IndexOf(stops[i], StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first))
                (first, matched) = (at, stops[i].Length);
        }

        if (first >= 0)
        {
            Stopped = true;
            return Take(Math.Max(searchFrom + first + (includeStop ? matched : 0), _emitted));
        }

        int holdBack = 0;
        for (int i = 0; i < stops.Count; i++)
            for (int len = Math.Min(stops[i].Length - 1, tail.Length); len > holdBack; len--)
                if (string.CompareOrdinal(tail, tail.Length - len, stops[i], 0, len) == 0)
                {
                    holdBack = len;
                    break;
                }

        return Take(_text.Length - holdBack);
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
