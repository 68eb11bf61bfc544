namespace Serving.Contracts.Generation;

/// <summary>A chosen token, its log-probability under the model's (unfiltered) distribution, and the top alternatives if asked for.</summary>
public sealed record SampledToken(int Id, float Logprob, IReadOnlyList<(int Id, float Logprob)> TopLogprobs);
