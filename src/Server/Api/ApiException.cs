using Serving.Runtime;

namespace Serving.Server.Api;

/// <summary>An error answered with an OpenAI-style body: <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
internal sealed class ApiException(int status, string message, string? param = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;

    /// <summary>Seconds a client should wait before retrying (the Retry-After header); null: no header.</summary>
    public int? RetryAfterSeconds { get; init; }

    public string Type => Status switch
    {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "invalid_request_error",
        422 => "unprocessable_entity_error",
        429 => "rate_limit_error",
        503 => "service_unavailable_error",
        _ => "server_error",
    };

    public static ApiException BadRequest(string message, string? param = null) => new(400, message, param);

    /// <summary>
    /// The API error for <paramref name="error"/>: itself, or the runtime's typed error mapped to its status; null for any
    /// other exception (a fault of the server's own).
    /// </summary>
    public static ApiException? Of(Exception error) => error switch
    {
        ApiException api => api,
        RequestFailedException failed => new ApiException(failed.Failure switch
        {
            RequestFailure.Invalid => 400,
            RequestFailure.Forbidden => 403,
            RequestFailure.NotFound => 404,
            RequestFailure.Unprocessable => 422,
            RequestFailure.Overloaded => 429,
            RequestFailure.Unavailable => 503,
            RequestFailure.TimedOut => 504,
            _ => 500,
        }, failed.Message, failed.Param),
        _ => null,
    };
}
