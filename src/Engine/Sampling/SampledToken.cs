namespace Serving.Engine.Sampling;

/// <summary>A chosen token, its log-probability under the model's (unfiltered) distribution, and the top alternatives if asked for.</summary>
internal sealed record SampledToken(int Id, float Logprob, IReadOnlyList<(int Id, float Logprob)> TopLogprobs);
