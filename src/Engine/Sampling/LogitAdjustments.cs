using Serving.Contracts.Generation;

namespace Serving.Engine.Sampling;

/// <summary>
/// The request's adjustments to one row of logits before any filter or draw, in vLLM's order:
/// <code>
/// l[t] = −∞                                  t ∉ allowed_token_ids (when given)
/// l[t] = −∞                                  t ∈ suppressed (stop tokens before min_tokens)
/// l[t] += logit_bias[t]
/// l[t] = l[t] &gt; 0 ? l[t] / r : l[t] · r     t in the prompt or the output (r = repetition_penalty)
/// l[t] −= frequency · count[t] + presence · [count[t] &gt; 0]        count: times t was generated
/// </code>
/// Work per row is the bias entries plus the distinct tokens seen, not the vocabulary (beyond one copy, and one fill when
/// an allowed set is given).
/// </summary>
internal static class LogitAdjustments
{
    [ThreadStatic] private static float[]? _adjusted;

    /// <summary>The adjusted logits, in a per-thread buffer valid until the next call on the thread.</summary>
    /// <param name="logits">One row <c>[vocab]</c>, left as it is (logprobs are reported from it).</param>
    /// <param name="p">The request's sampling parameters.</param>
    /// <param name="history">The sequence's tokens; null when no penalty applies.</param>
    /// <param name="suppressed">Tokens that may not be chosen at this step.</param>
    public static ReadOnlySpan<float> Apply(ReadOnlySpan<float> logits, SamplingParams p, TokenHistory? history, IReadOnlyCollection<int> suppressed)
    {
        if (_adjusted is null || _adjusted.Length < logits.Length)
            _adjusted = new float[logits.Length];
        var l = _adjusted.AsSpan(0, logits.Length);
        if (p.AllowedTokenIds is { } allowed)
        {
            l.Fill(float.NegativeInfinity);
            foreach (int t in allowed)
                if ((uint)t < (uint)l.Length)
                    l[t] = logits[t];
        }
        else
        {
            logits.CopyTo(l);
        }

        foreach (int t in suppressed)
            if ((uint)t < (uint)l.Length)
                l[t] = float.NegativeInfinity;
        foreach (var (t, bias) in p.LogitBias)
            if ((uint)t < (uint)l.Length)
                l[t] += bias;
        if (history is null)
            return l;
        if (p.RepetitionPenalty != 1f)
        {
            float r = p.RepetitionPenalty;
            foreach (int t in history.Prompt ?? [])
                if ((uint)t < (uint)l.Length)
                    l[t] = Repeated(l[t], r);
            foreach (int t in history.Generated.Keys)
                if ((uint)t < (uint)l.Length && history.Prompt?.Contains(t) != true)
                    l[t] = Repeated(l[t], r);
        }

        if (p.FrequencyPenalty != 0 || p.PresencePenalty != 0)
            foreach (var (t, count) in history.Generated)
                if ((uint)t < (uint)l.Length)
                    l[t] -= p.FrequencyPenalty * count + p.PresencePenalty;
        return l;
    }

    private static float Repeated(float logit, float r) => logit > 0 ? logit / r : logit * r;
}
