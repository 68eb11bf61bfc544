using Microsoft.Extensions.Options;
using Serving.Server.Api;

namespace Serving.Server.Security;

/// <summary>
/// Every call except probes, the gRPC health service and the console's static page needs a valid key: REST answers 401 with an OpenAI-style body,
/// gRPC UNAUTHENTICATED. <c>/metrics</c> names tenants and adapters, so with keys configured it needs an Admin or Metrics
/// key, except on the metrics-only listener (<see cref="Observability.MetricsOptions.Url"/>), which serves nothing else.
/// The caller is stored on the request for the endpoints (<see cref="CallerOf"/>).
/// </summary>
internal static class AuthenticationMiddleware
{
    public static async Task InvokeAsync(HttpContext ctx, Func<Task> next)
    {
        var path = ctx.Request.Path;
        bool metrics = path.StartsWithSegments("/metrics");
        if (ctx.RequestServices.GetRequiredService<IOptions<Observability.MetricsOptions>>().Value.Port is int metricsPort
            && ctx.Connection.LocalPort == metricsPort)
        {
            if (metrics)
                await next();
            else
                await ApiErrorWriter.Result(new ApiException(404, "this listener serves only /metrics")).ExecuteAsync(ctx);
            return;
        }

        if (Hosting.ProbePaths.Contains(path) || path.StartsWithSegments("/grpc.health.v1.Health")
            || (HttpMethods.IsGet(ctx.Request.Method) && Hosting.ConsoleAssets.IsConsolePath(path)))   // the console's page holds no data
        {
            await next();
            return;
        }

        var caller = ctx.RequestServices.GetRequiredService<ApiKeyAuthenticator>().Authenticate(ctx.Request.Headers.Authorization, out string? failure);
        if (caller is null)
        {
            await RefuseAsync(ctx, 401, 16, failure!);
            return;
        }

        if (metrics ? caller.Role is CallerRole.User : caller.Role is CallerRole.Metrics)
        {
            await RefuseAsync(ctx, 403, 7, metrics
                ? "/metrics names every tenant and adapter: it needs an Admin or Metrics key (or the metrics listener, Serving:Metrics:Url)"
                : "this key may only read /metrics");
            return;
        }

        ctx.Items[typeof(Caller)] = caller;
        await next();
    }

    private static async Task RefuseAsync(HttpContext ctx, int status, int grpcStatus, string message)
    {
        if (ctx.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) == true)
        {
            ctx.Response.ContentType = "application/grpc";
            ctx.Response.Headers["grpc-status"] = grpcStatus.ToString(System.Globalization.CultureInfo.InvariantCulture);
            ctx.Response.Headers["grpc-message"] = Uri.EscapeDataString(message);
            return;
        }

        if (status == 401)
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
        await ApiErrorWriter.Result(new ApiException(status, message)).ExecuteAsync(ctx);
    }

    public static Caller CallerOf(HttpContext ctx) => ctx.Items[typeof(Caller)] as Caller ?? throw new InvalidOperationException("no authenticated caller");
}
