namespace Serving.Server.Observability;

/// <summary>
/// <c>Serving:Metrics</c>: who may read <c>/metrics</c>, whose series name tenants and their adapters. On the API port it
/// needs an Admin or Metrics key once keys are configured. <see cref="Url"/> adds a listener that serves only
/// <c>/metrics</c>, without a key, for scrapers inside the cluster (Prometheus, the gateway's endpoint picker); keep that
/// port off the Service and the Gateway and let a NetworkPolicy admit only the scrapers.
/// </summary>
internal sealed class MetricsOptions
{
    public const string Section = "Serving:Metrics";

    /// <summary>An <c>http://HOST:PORT</c> for the metrics-only listener (a fixed port, not the API's); none by default.</summary>
    public string? Url { get; set; }

    /// <summary>The listener's port, when one is configured and valid.</summary>
    public int? Port => Uri.TryCreate(Url, UriKind.Absolute, out var uri) && uri.Scheme == "http" && !uri.IsDefaultPort && uri.Port > 0 ? uri.Port : null;

    public IEnumerable<string> Validate()
    {
        if (!string.IsNullOrEmpty(Url) && Port is null)
            yield return $"Serving:Metrics:Url must be http://HOST:PORT with an explicit, non-zero port (got '{Url}')";
    }
}
