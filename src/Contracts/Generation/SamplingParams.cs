namespace Serving.Contracts.Generation;

/// <summary>
/// How to pick each next token and when to stop. Temperature 0 is greedy. TopK ≤ 0 and TopP = 1 disable those
/// filters. A Seed makes sampling reproducible: the same seed, prompt and parameters give the same tokens.
/// </summary>
public sealed record SamplingParams
{
    public double Temperature { get; init; } = 1.0;
    public int TopK { get; init; }
    public double TopP { get; init; } = 1.0;
    public ulong? Seed { get; init; }
    public int MaxTokens { get; init; } = 16;
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    public bool IgnoreEos { get; init; }

    /// <summary>Structured output: the form the output must take (JSON Schema, regex, choice), or null for free text.</summary>
    public OutputConstraint? Constraint { get; init; }

    /// <summary>Null: no logprobs. N ≥ 0: the sampled token's logprob plus the N most likely alternatives.</summary>
    public int? Logprobs { get; init; }

    public void Validate()
    {
        if (double.IsNaN(Temperature) || Temperature < 0 || Temperature > 100)
            throw new ArgumentException("temperature must be in [0, 100]");
        if (double.IsNaN(TopP) || TopP <= 0 || TopP > 1)
            throw new ArgumentException("top_p must be in (0, 1]");
        if (TopK < -1)
            throw new ArgumentException("top_k must be -1, 0 (disabled) or positive");
        if (MaxTokens < 1)
            throw new ArgumentException("max_tokens must be at least 1");
        if (Logprobs is < 0 or > 20)
            throw new ArgumentException("logprobs must be in [0, 20]");
        if (StopStrings.Any(string.IsNullOrEmpty))
            throw new ArgumentException("stop strings must not be empty");
    }
}
