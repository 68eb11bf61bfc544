using Grpc.Core;
using Microsoft.AspNetCore.Http.Features;

namespace Serving.Server.Observability;

/// <summary>
/// Counts every answered request in <c>serving_requests_total</c>: REST by HTTP status, native gRPC by its status name
/// (from the trailers, or the headers of a trailers-only error). Outermost middleware, so errors turned into responses
/// by the exception handler are counted as sent. Probes and scrapes are not counted.
/// </summary>
internal static class RequestCounting
{
    public static async Task InvokeAsync(HttpContext ctx, Func<Task> next)
    {
        try
        {
            await next();
        }
        finally
        {
            var path = ctx.Request.Path;
            if (!path.StartsWithSegments("/metrics") && !Hosting.ProbePaths.Contains(path))
            {
                bool grpc = ctx.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) == true;
                string status = grpc ? GrpcStatus(ctx) : ctx.Response.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
                // The matched route, never the raw path (unbounded label values); unmatched requests share one label.
                string route = ctx.GetEndpoint() is Microsoft.AspNetCore.Routing.RouteEndpoint e ? e.RoutePattern.RawText ?? "" : grpc ? path.Value ?? "" : "unmatched";
                string tenant = ctx.Items[typeof(Security.Caller)] is Security.Caller caller ? caller.Tenant : "";
                ctx.RequestServices.GetRequiredService<PrometheusExporter>().Requests.WithLabels(grpc ? "grpc" : "http", route, status, tenant).Inc();
            }
        }
    }

    private static string GrpcStatus(HttpContext ctx)
    {
        string? code = ctx.Features.Get<IHttpResponseTrailersFeature>()?.Trailers["grpc-status"];
        if (string.IsNullOrEmpty(code))
            code = ctx.Response.Headers["grpc-status"];
        return int.TryParse(code, out int value) && Enum.IsDefined((StatusCode)value) ? ((StatusCode)value).ToString() : "Unknown";
    }
}
