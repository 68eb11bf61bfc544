using Serving.Engine.Sampling;

namespace Serving.Server.OpenAi;

/// <summary>What /v1/completions and /v1/chat/completions have in common once parsed and tokenized.</summary>
internal sealed record GenerationRequest(
    string Model,
    IReadOnlyList<IReadOnlyList<int>> Prompts,
    SamplingParams Sampling,
    bool Stream,
    bool IncludeUsage,
    bool ReturnTokenIds);
