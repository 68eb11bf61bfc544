namespace Serving.Engine.Generation;

/// <summary>
/// Draft tokens by lookup, with no draft model (vLLM's <c>ngram</c> speculative method, llama.cpp's lookup decoding, and
/// OpenAI's predicted outputs): the sequence's last n tokens are looked for in a text — the sequence itself, or a predicted
/// output — and the tokens that followed them there are proposed to follow them now. Longer patterns are tried first (n from
/// max down to min), since a longer match predicts better. Pure functions over token ids; the step verifies what they propose.
/// </summary>
public static class NgramProposer
{
    /// <summary>How far (in tokens) from the output's expected end a predicted output is searched.</summary>
    public const int PredictionWindow = 2048;

    /// <summary>
    /// Drafts from the sequence's own tokens: the most recent earlier occurrence of its last n tokens, and what followed it,
    /// continued periodically past the sequence's end. Returns how many of <paramref name="drafts"/> it wrote: all of them, or
    /// 0 when no pattern of minN..maxN tokens recurs.
    /// </summary>
    /// <param name="tokens">The sequence so far (prompt, then generated).</param>
    /// <param name="minN">Shortest pattern (≥ 1).</param>
    /// <param name="maxN">Longest pattern (≥ minN).</param>
    /// <param name="drafts">Where the drafts go; its length is the most proposed.</param>
    public static int FromSequence(ReadOnlySpan<int> tokens, int minN, int maxN, Span<int> drafts)
    {
        CheckRange(minN, maxN);
        for (int n = Math.Min(maxN, tokens.Length - 1); n >= minN; n--)
        {
            // Occurrences that end before the last token, so something follows them.
            int start = tokens[..^1].LastIndexOf(tokens[^n..]);
            if (start < 0)
                continue;
            // What followed, read on into the drafts themselves when it reaches the end: a loop (the most recent occurrence
            // of a repeating pattern is one period back) is proposed for as long as asked.
            for (int i = 0; i < drafts.Length; i++)
            {
                int at = start + n + i;
                drafts[i] = at < tokens.Length ? tokens[at] : drafts[at - tokens.Length];
            }

            return drafts.Length;
        }

        return 0;
    }

    /// <summary>
    /// Drafts from a predicted output: the occurrence of the sequence's last n tokens in <paramref name="prediction"/> whose end
    /// lies nearest <paramref name="expectedEnd"/> (where the output so far would end if it were the prediction: so a line
    /// that repeats in the prediction is continued at the right place; only within <see cref="PredictionWindow"/> of it),
    /// and what follows it there.
    /// </summary>
    /// <param name="tokens">The sequence so far (prompt, then generated).</param>
    /// <param name="prediction">The predicted output's tokens.</param>
    /// <param name="expectedEnd">Tokens generated so far.</param>
    /// <param name="minN">Shortest pattern (≥ 1).</param>
    /// <param name="maxN">Longest pattern (≥ minN).</param>
    /// <param name="drafts">Where the drafts go; its length is the most proposed.</param>
    public static int FromPrediction(ReadOnlySpan<int> tokens, ReadOnlySpan<int> prediction, int expectedEnd, int minN, int maxN, Span<int> drafts)
    {
        CheckRange(minN, maxN);
        // Only occurrences ending within PredictionWindow of where the output would end are looked at: a step's lookup
        // costs the same whatever the prediction's length (a tenant's 32k-token prediction of one repeated token included).
        int lo = Math.Max(0, expectedEnd - PredictionWindow - maxN), hi = Math.Min(prediction.Length, expectedEnd + PredictionWindow);
        for (int n = Math.Min(maxN, tokens.Length); n >= minN; n--)
        {
            var pattern = tokens[^n..];
            int best = -1;
            for (int from = lo; from + n < hi;)
            {
                int found = prediction[from..(hi - 1)].IndexOf(pattern);
                if (found < 0)
                    break;
                int end = from + found + n;
                if (best < 0 || Math.Abs(end - expectedEnd) < Math.Abs(best - expectedEnd))
                    best = end;
                if (end >= expectedEnd)
                    break;                                   // later ones are farther
                from += found + 1;
            }

            if (best < 0)
                continue;
            int count = Math.Min(prediction.Length - best, drafts.Length);
            prediction.Slice(best, count).CopyTo(drafts);
            return count;
        }

        return 0;
    }

    private static void CheckRange(int minN, int maxN)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(minN, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxN, minN);
    }
}
