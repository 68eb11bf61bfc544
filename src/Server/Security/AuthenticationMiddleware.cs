using Serving.Server.OpenAi;

namespace Serving.Server.Security;

/// <summary>
/// Every call except probes, the metrics scrape and the gRPC health service needs a valid key: REST answers 401 with an
/// OpenAI-style body, gRPC UNAUTHENTICATED. The caller is stored on the request for the endpoints (<see cref="CallerOf"/>).
/// </summary>
internal static class AuthenticationMiddleware
{
    public static async Task InvokeAsync(HttpContext ctx, Func<Task> next)
    {
        var path = ctx.Request.Path;
        if (path.StartsWithSegments("/healthz") || path.StartsWithSegments("/readyz") || path.StartsWithSegments("/metrics")
            || path.StartsWithSegments("/grpc.health.v1.Health"))
        {
            await next();
            return;
        }

        var caller = ctx.RequestServices.GetRequiredService<ApiKeyAuthenticator>().Authenticate(ctx.Request.Headers.Authorization, out string? failure);
        if (caller is null)
        {
            string message = failure!;
            if (ctx.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) == true)
            {
                ctx.Response.ContentType = "application/grpc";
                ctx.Response.Headers["grpc-status"] = "16";
                ctx.Response.Headers["grpc-message"] = message;
                return;
            }

            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            await ApiErrorWriter.Result(new ApiException(401, message)).ExecuteAsync(ctx);
            return;
        }

        ctx.Items[typeof(Caller)] = caller;
        await next();
    }

    public static Caller CallerOf(HttpContext ctx) => ctx.Items[typeof(Caller)] as Caller ?? throw new InvalidOperationException("no authenticated caller");
}
