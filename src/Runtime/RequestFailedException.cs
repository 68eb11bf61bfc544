namespace Serving.Runtime;

/// <summary>
/// The runtime's typed error: what went wrong (<see cref="Failure"/>), a message for the client that names the problem,
/// and the request field it concerns. Only the API layer maps it to a status.
/// </summary>
public sealed class RequestFailedException(RequestFailure failure, string message, string? param = null) : Exception(message)
{
    public RequestFailure Failure { get; } = failure;

    /// <summary>The request field the error is about (<c>model</c>, <c>routing.candidates</c>), or null.</summary>
    public string? Param { get; } = param;
}
