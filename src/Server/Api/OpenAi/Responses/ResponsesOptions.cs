namespace Serving.Server.Api.OpenAi.Responses;

/// <summary>
/// <c>Serving:Responses</c>: how much of the Responses API's stored state the server keeps, in memory. A response sent
/// with <c>store</c> (true unless the request says false) is kept for <see cref="StoreMinutes"/> so that
/// <c>previous_response_id</c>, <c>GET</c> and <c>DELETE /v1/responses/{id}</c> find it — only for the tenant that made it.
/// Under the byte bounds the oldest responses go first, those of the tenant holding the most bytes before anyone else's.
/// </summary>
public sealed class ResponsesOptions
{
    public const string Section = "Serving:Responses";

    /// <summary>Bytes of stored conversations (their items' JSON) over all tenants; 0 stores nothing (<c>store: true</c> is then a 400).</summary>
    public long StoreBytes { get; set; } = 256L << 20;

    /// <summary>Bytes one tenant's stored responses may hold; past it the tenant's own oldest go.</summary>
    public long StoreBytesPerTenant { get; set; } = 64L << 20;

    /// <summary>Minutes a stored response is kept after it was made.</summary>
    public int StoreMinutes { get; set; } = 60;

    public IEnumerable<string> Validate()
    {
        if (StoreBytes < 0)
            yield return $"{Section}:StoreBytes must be 0 (store nothing) or more, not {StoreBytes}";
        if (StoreBytesPerTenant < 1 || (StoreBytes > 0 && StoreBytesPerTenant > StoreBytes))
            yield return $"{Section}:StoreBytesPerTenant must be at least 1 and at most StoreBytes ({StoreBytes}), not {StoreBytesPerTenant}";
        if (StoreMinutes < 1)
            yield return $"{Section}:StoreMinutes must be at least 1, not {StoreMinutes}";
    }
}
