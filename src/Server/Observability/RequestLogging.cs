namespace Serving.Server.Observability;

/// <summary>
/// Gives every request an id (<c>X-Request-Id</c>: the caller's, if it sent a reasonable one, else the server's trace
/// identifier) and opens a log scope with it, so every log line a request causes — in the endpoints, the generation
/// client, the adapter store — can be joined on <c>RequestId</c> (visible with <c>--Logging:Console:FormatterName json</c>
/// or <c>IncludeScopes</c>).
/// </summary>
internal static class RequestLogging
{
    public static async Task InvokeAsync(HttpContext ctx, Func<Task> next)
    {
        string? given = ctx.Request.Headers["X-Request-Id"];
        string id = given is { Length: > 0 and <= 128 } && given.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') ? given : ctx.TraceIdentifier;
        ctx.TraceIdentifier = id;
        ctx.Response.Headers["X-Request-Id"] = id;
        var logger = ctx.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Serving.Requests");
        using (logger.BeginScope(new Dictionary<string, object> { ["RequestId"] = id }))
            await next();
    }
}
