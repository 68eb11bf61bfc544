namespace Serving.Contracts.Generation;

/// <summary>
/// A prompt token scored by the model (vLLM's <c>prompt_logprobs</c>): its log-probability given the tokens before it,
/// its rank in that distribution (1: the most likely), and the most likely alternatives if asked for.
/// </summary>
public sealed record PromptTokenLogprob(int Id, float Logprob, int Rank, IReadOnlyList<(int Id, float Logprob)> TopLogprobs);
