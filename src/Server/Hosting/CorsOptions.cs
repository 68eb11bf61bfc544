namespace Serving.Server.Hosting;

/// <summary>
/// <c>Serving:Cors</c> (vLLM's <c>--allowed-origins</c>, <c>--allowed-methods</c>, <c>--allowed-headers</c>,
/// <c>--allow-credentials</c>): which browser origins may call the API from their pages. None by default — vLLM's
/// default is every origin, but a page of any site could then spend a tenant's key that its browser holds. The web
/// console is served from the server itself and needs none.
/// </summary>
public sealed class CorsOptions
{
    /// <summary>Origins allowed (<c>https://app.example</c>, or <c>*</c> for any); empty: no CORS headers at all.</summary>
    public List<string> AllowedOrigins { get; set; } = [];

    /// <summary>Methods a cross-origin request may use; empty: any (<c>*</c>).</summary>
    public List<string> AllowedMethods { get; set; } = [];

    /// <summary>Request headers it may send (<c>Authorization</c> for an API key); empty: any (<c>*</c>).</summary>
    public List<string> AllowedHeaders { get; set; } = [];

    /// <summary>Whether the browser may send its credentials (cookies); never with any origin (<c>*</c>).</summary>
    public bool AllowCredentials { get; set; }

    /// <summary>The problems with the values, each naming its setting.</summary>
    public IEnumerable<string> Validate()
    {
        if (AllowCredentials && AllowedOrigins.Contains("*"))
            yield return "Serving:Cors:AllowCredentials (--allow-credentials) cannot go with every origin ('*'): name the origins";
        foreach (string origin in AllowedOrigins.Where(o => o != "*" && !(Uri.TryCreate(o, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
                     && uri.AbsolutePath == "/" && !o.EndsWith('/'))))
            yield return $"Serving:Cors:AllowedOrigins: '{origin}' is not an origin (scheme://host[:port], no path) nor '*'";
    }
}
