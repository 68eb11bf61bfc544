namespace Serving.Server.Security;

/// <summary><c>Serving:Auth</c>: API keys. None configured: the server is open (local development).</summary>
internal sealed class AuthOptions
{
    public const string Section = "Serving:Auth";

    public List<ApiKeyOptions> Keys { get; set; } = [];

    /// <summary>Keys with the admin's role and nothing else set (vLLM's <c>--api-key</c>).</summary>
    public List<string> AdminKeys { get; set; } = [];

    /// <summary><see cref="Keys"/> and the <see cref="AdminKeys"/> as admins' keys: every key the server accepts.</summary>
    public IEnumerable<ApiKeyOptions> AllKeys => Keys.Concat(AdminKeys.Select(k => new ApiKeyOptions { Key = k, Role = CallerRole.Admin }));

    public IEnumerable<string> Validate()
    {
        for (int i = 0; i < AdminKeys.Count; i++)
            if (AdminKeys[i].Length < 16)
                yield return $"Serving:Auth:AdminKeys:{i} (--api-key, or VLLM_API_KEY) must be at least 16 characters";

        for (int i = 0; i < Keys.Count; i++)
        {
            var k = Keys[i];
            if (k.Key.Length < 16)
                yield return $"Serving:Auth:Keys:{i}:Key must be at least 16 characters";
            if (!Enum.IsDefined(k.Role))
                yield return $"Serving:Auth:Keys:{i}:Role must be User, Admin or Metrics";
            if (k.Role == CallerRole.User && string.IsNullOrWhiteSpace(k.Tenant))
                yield return $"Serving:Auth:Keys:{i}:Tenant is required for role User";
        }

        if (AllKeys.Select(k => k.Key).Distinct(StringComparer.Ordinal).Count() != Keys.Count + AdminKeys.Count)
            yield return "Serving:Auth:Keys and AdminKeys hold the same key twice";
    }
}
