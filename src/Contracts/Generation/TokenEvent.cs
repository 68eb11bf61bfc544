namespace Serving.Contracts.Generation;

/// <summary>What one step produced for one sequence: the token, the text that became safe to show, and whether it finished.</summary>
public sealed record TokenEvent(SampledToken Token, string TextDelta, FinishReason Finish);
