namespace Serving.Server.Security;

/// <summary>One API key: <c>Serving:Auth:Keys:N:{Key,Tenant,Role,AllowedSources:M}</c> (or <c>Serving__Auth__Keys__N__Key</c> ...).</summary>
internal sealed class ApiKeyOptions
{
    public string Key { get; set; } = "";
    public string Tenant { get; set; } = "";
    public CallerRole Role { get; set; } = CallerRole.User;

    /// <summary>When set, the key is refused from this moment on (ISO 8601, e.g. <c>2027-01-31T00:00:00Z</c>): rotate keys without a restart race.</summary>
    public DateTimeOffset? ExpiresAt { get; set; }

    /// <summary>
    /// Under priority scheduling, the most urgent (lowest) <c>priority</c> this key's requests may ask for; unset: 0 for
    /// users, who may then only make their own requests less urgent, and any for admins. Lower values are a 403.
    /// </summary>
    public int? MostUrgentPriority { get; set; }

    /// <summary>Folder or <c>s3://bucket/prefix</c> prefixes a user may register adapters from.</summary>
    public List<string> AllowedSources { get; set; } = [];
}
