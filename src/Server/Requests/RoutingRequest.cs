namespace Serving.Server.Requests;

/// <summary>
/// The routing options of a <c>model: "auto"</c> request: the adapters to choose between (null: every adapter the caller
/// may use), how many to mix, the softmax temperature, and the method (<c>arrow</c> or <c>centroid</c>); null fields take
/// the server's defaults.
/// </summary>
internal sealed record RoutingRequest(IReadOnlyList<string>? Candidates, int? TopK, double? Temperature, string? Method);
