using Serving.LoadTests.Planning;

namespace Serving.LoadTests.Clients;

/// <summary>
/// What happened to one request. <see cref="Status"/> is "ok" or the protocol's own code ("429", "ResourceExhausted",
/// "timeout", "connection"). Times are milliseconds from the moment the request was sent; <see cref="TpotMs"/> is the
/// mean gap between output tokens after the first (NaN with fewer than two). <see cref="OutputTokenIds"/> are the
/// generated tokens of a successful request (a conversation's next turn carries them).
/// </summary>
internal sealed record RequestOutcome(
    PlannedRequest Request,
    string Status,
    double StartedAtSeconds,
    double TtftMs,
    double TpotMs,
    double EndToEndMs,
    int OutputTokens,
    string? Error,
    IReadOnlyList<int>? OutputTokenIds = null)
{
    public bool Succeeded => Status == "ok";
}
