namespace Serving.Contracts.Generation;

/// <summary>
/// What one step produced for one sequence: the token, the text that became safe to show, and whether it finished. The
/// first event of a request also says how many of its prompt tokens' KV came from the prefix cache.
/// </summary>
public sealed record TokenEvent(SampledToken Token, string TextDelta, FinishReason Finish, int CachedPromptTokens = 0)
{
    /// <summary>On the last event of a request with an output constraint: the output ended before it was complete.</summary>
    public bool OutputIncomplete { get; init; }

    /// <summary>
    /// On the first event of a request with <see cref="SamplingParams.PromptLogprobs"/>: one entry per prompt token, null
    /// for the first (nothing predicts it); null otherwise.
    /// </summary>
    public IReadOnlyList<PromptTokenLogprob?>? PromptLogprobs { get; init; }

    /// <summary>
    /// On the first event of a request with <see cref="SamplingParams.EmbedPrompt"/>: its prompt's final hidden states
    /// (after the final norm) pooled as <see cref="SamplingParams.Pooling"/> says, <c>[hidden]</c>, not normalised; null otherwise.
    /// </summary>
    public IReadOnlyList<float>? Embedding { get; init; }

    /// <summary>On the last event of a request that sent a predicted output: how its tokens fared as drafts; null otherwise.</summary>
    public PredictionTokens? Prediction { get; init; }
}
