namespace Serving.AdapterStore;

/// <summary>
/// <c>Serving:Adapters:S3</c>. Empty ServiceUrl and keys use the AWS SDK's defaults (region, credential chain), i.e.
/// AWS S3; set ServiceUrl (and ForcePathStyle) for MinIO or another S3-compatible store.
/// </summary>
public sealed class S3SourceOptions
{
    public string? ServiceUrl { get; set; }
    public string Region { get; set; } = "us-east-1";
    public string? AccessKey { get; set; }
    public string? SecretKey { get; set; }
    public bool ForcePathStyle { get; set; } = true;

    /// <summary>How long the circuit breaker stays open after repeated failures before trying the store again.</summary>
    public double BreakSeconds { get; set; } = 5;

    /// <summary>
    /// The longest one attempt waits for the store to start answering (connection, request, response headers). A store
    /// that accepts connections but never answers fails each attempt after this long, and the breaker opens after three
    /// such attempts. S3's first-byte latency is typically 0.1–0.2 s.
    /// </summary>
    public double ResponseTimeoutSeconds { get; set; } = 3;

    /// <summary>The longest a download waits for the next bytes of an object's body; a body that stalls fails the attempt.</summary>
    public double ReadIdleTimeoutSeconds { get; set; } = 10;
}
