namespace Serving.Server.Security;

/// <summary><c>Serving:Auth</c>: API keys. None configured: the server is open (local development).</summary>
internal sealed class AuthOptions
{
    public const string Section = "Serving:Auth";

    public List<ApiKeyOptions> Keys { get; set; } = [];

    public IEnumerable<string> Validate()
    {
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

        if (Keys.Select(k => k.Key).Distinct(StringComparer.Ordinal).Count() != Keys.Count)
            yield return "Serving:Auth:Keys holds the same key twice";
    }
}
