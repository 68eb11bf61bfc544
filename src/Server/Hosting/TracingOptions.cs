namespace Serving.Server.Hosting;

/// <summary><c>Serving:Tracing</c>: where spans go over OTLP (or the standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>); none: no spans.</summary>
public sealed class TracingOptions
{
    public string? OtlpEndpoint { get; set; }
}
