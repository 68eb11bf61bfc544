namespace Serving.LoadTests.Planning;

/// <summary>
/// One request of a run, fixed before it is sent so two server configurations see the same requests.
/// <see cref="Model"/> is what goes in the request's <c>model</c>: the adapter id, the base model id, or <c>auto</c>.
/// <see cref="ApiKey"/> overrides the scenario's key (a conversation's tenant).
/// </summary>
internal sealed record PlannedRequest(
    int Index,
    RequestKind Kind,
    string Model,
    IReadOnlyList<(string Id, double Weight)> Mixture,
    int[] PromptTokenIds,
    int MaxTokens,
    TimeSpan ArrivalOffset,
    string? ApiKey = null)
{
    /// <summary>The adapter whose popularity drew this request (for per-adapter figures); null for base and auto.</summary>
    public string? Adapter => Kind switch
    {
        RequestKind.Adapter => Model,
        RequestKind.Mixture => Mixture[0].Id,
        _ => null,
    };
}
