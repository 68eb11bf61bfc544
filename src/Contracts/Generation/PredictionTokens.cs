namespace Serving.Contracts.Generation;

/// <summary>
/// How a request's predicted output (OpenAI's <c>prediction</c>) fared as speculative drafts: tokens of it the model
/// confirmed, and tokens of it proposed and not taken (OpenAI's <c>accepted_prediction_tokens</c> and
/// <c>rejected_prediction_tokens</c>).
/// </summary>
public sealed record PredictionTokens(int Accepted, int Rejected);
