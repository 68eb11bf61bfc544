using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Serving.Server.Security;

/// <summary>
/// Maps <c>Authorization: Bearer KEY</c> to a <see cref="Caller"/>. Keys are kept only as SHA-256 digests and compared
/// in constant time against every configured key (no early exit), so neither timing nor memory dumps reveal them; keys
/// are never logged.
/// </summary>
internal sealed class ApiKeyAuthenticator
{
    private readonly (byte[] Digest, Caller Caller)[] _keys;

    public ApiKeyAuthenticator(IOptions<AuthOptions> options) =>
        _keys = options.Value.Keys.Select(k => (Digest(k.Key), new Caller(k.Tenant, k.Role, k.AllowedSources.ToArray()))).ToArray();

    public bool IsOpen => _keys.Length == 0;

    /// <summary>The caller for an Authorization header value; null when missing, malformed or unknown.</summary>
    public Caller? Authenticate(string? authorization)
    {
        if (IsOpen)
            return Caller.Open;
        const string scheme = "Bearer ";
        if (authorization is null || !authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) || authorization.Length > 4096)
            return null;
        var digest = Digest(authorization[scheme.Length..].Trim());
        Caller? found = null;
        foreach (var (key, caller) in _keys)
            if (CryptographicOperations.FixedTimeEquals(key, digest))
                found = caller;
        return found;
    }

    private static byte[] Digest(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
