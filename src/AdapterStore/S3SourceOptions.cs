namespace Serving.AdapterStore;

/// <summary>
/// <c>Serving:Adapters:S3</c>. Empty ServiceUrl and keys use the AWS SDK's defaults (region, credential chain), i.e.
/// AWS S3; set ServiceUrl (and ForcePathStyle) for MinIO or another S3-compatible store.
/// </summary>
internal sealed class S3SourceOptions
{
    public string? ServiceUrl { get; set; }
    public string Region { get; set; } = "us-east-1";
    public string? AccessKey { get; set; }
    public string? SecretKey { get; set; }
    public bool ForcePathStyle { get; set; } = true;

    /// <summary>How long the circuit breaker stays open after repeated failures before trying the store again.</summary>
    public double BreakSeconds { get; set; } = 5;
}
