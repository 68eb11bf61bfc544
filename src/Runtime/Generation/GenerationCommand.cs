using Serving.Batching;
using Serving.Contracts;
using Serving.Contracts.Generation;

namespace Serving.Runtime.Generation;

/// <summary>A request handed to the <see cref="EngineWorker"/>: what to generate, with which adapters, for whom, and where to send each token.</summary>
internal sealed record GenerationCommand(
    IReadOnlyList<int> PromptTokens,
    SamplingParams Sampling,
    PinnedAdapters Adapters,
    RequestOutput Output,
    CancellationToken Aborted,
    string Tenant = "",
    DateTimeOffset? Deadline = null,
    string? CacheSalt = null,
    int Priority = 0,
    IReadOnlyList<int>? PredictionTokens = null);
