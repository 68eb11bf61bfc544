namespace Serving.Server.Security;

/// <summary>One API key: <c>Serving:Auth:Keys:N:{Key,Tenant,Role,AllowedSources:M}</c> (or <c>Serving__Auth__Keys__N__Key</c> ...).</summary>
internal sealed class ApiKeyOptions
{
    public string Key { get; set; } = "";
    public string Tenant { get; set; } = "";
    public CallerRole Role { get; set; } = CallerRole.User;

    /// <summary>When set, the key is refused from this moment on (ISO 8601, e.g. <c>2027-01-31T00:00:00Z</c>): rotate keys without a restart race.</summary>
    public DateTimeOffset? ExpiresAt { get; set; }

    /// <summary>Folder or <c>s3://bucket/prefix</c> prefixes a user may register adapters from.</summary>
    public List<string> AllowedSources { get; set; } = [];
}
