using Serving.Contracts.Generation;

namespace Serving.Runtime.Generation;

/// <summary>
/// One generation, as every front door hands it to the runtime: a tokenized prompt within the context limit, complete
/// sampling parameters, the adapters pinned when it arrived, whose it is, and when it must end at the latest.
/// </summary>
/// <param name="PromptTokens">Token ids (at least one).</param>
/// <param name="Sampling">How to sample and when to stop; MaxTokens set.</param>
/// <param name="Adapters">Adapters and their versions, resolved once.</param>
/// <param name="Tenant">Whose request it is (per-tenant limits); empty for anonymous.</param>
/// <param name="Deadline">When it must end (a gRPC deadline); past it the stream ends with 504 / DEADLINE_EXCEEDED.</param>
/// <param name="CacheSalt">vLLM's <c>cache_salt</c>: prefix-cache blocks are shared only between requests with the same salt (and tenant).</param>
/// <param name="Priority">vLLM's <c>priority</c> under priority scheduling: lower is more urgent; 0 by default.</param>
/// <param name="PredictionTokens">OpenAI's <c>prediction</c>, tokenized: an expected output the engine drafts from (speculative
/// decoding); it changes how fast the output comes, never what it is.</param>
public sealed record GenerationRequest(IReadOnlyList<int> PromptTokens, SamplingParams Sampling, PinnedAdapters Adapters, string Tenant = "",
    DateTimeOffset? Deadline = null, string? CacheSalt = null, int Priority = 0, IReadOnlyList<int>? PredictionTokens = null);
