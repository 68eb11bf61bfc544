using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Serving.Server.Security;

/// <summary>
/// Maps <c>Authorization: Bearer KEY</c> to a <see cref="Caller"/>. Keys are kept only as SHA-256 digests and compared
/// in constant time against every configured key (no early exit), so neither timing nor memory dumps reveal them; keys
/// are never logged. A key past its <see cref="ApiKeyOptions.ExpiresAt"/> is refused with its own reason.
/// </summary>
internal sealed class ApiKeyAuthenticator
{
    private readonly (byte[] Digest, Caller Caller, DateTimeOffset? ExpiresAt)[] _keys;
    private readonly TimeProvider _time;

    public ApiKeyAuthenticator(IOptions<AuthOptions> options, TimeProvider time)
    {
        _keys = options.Value.AllKeys.Select(k => (Digest(k.Key), new Caller(k.Tenant, k.Role, k.AllowedSources.ToArray(), k.MostUrgentPriority), k.ExpiresAt)).ToArray();
        _time = time;
    }

    public bool IsOpen => _keys.Length == 0;

    /// <summary>The caller for an Authorization header value; null (with the reason) when missing, malformed, unknown or expired.</summary>
    public Caller? Authenticate(string? authorization, out string? failure)
    {
        failure = null;
        if (IsOpen)
            return Caller.Open;
        const string scheme = "Bearer ";
        if (authorization is null || !authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) || authorization.Length > 4096)
        {
            failure = "a valid API key is required: Authorization: Bearer KEY";
            return null;
        }

        var digest = Digest(authorization[scheme.Length..].Trim());
        Caller? found = null;
        DateTimeOffset? expiresAt = null;
        foreach (var (key, caller, expiry) in _keys)
        {
            if (CryptographicOperations.FixedTimeEquals(key, digest))
                (found, expiresAt) = (caller, expiry);
        }

        if (found is null)
            failure = "a valid API key is required: Authorization: Bearer KEY";
        else if (expiresAt is { } at && _time.GetUtcNow() >= at)
            (found, failure) = (null, $"the API key expired at {at:O}");
        return found;
    }

    private static byte[] Digest(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
