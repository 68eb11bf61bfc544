namespace Serving.Server.Hosting;

/// <summary>
/// <c>Serving.Server healthcheck [URL]</c>: one GET, exit 0 on a 2xx answer within 5 s, else 1 with the reason on
/// stderr. The container image's <c>HEALTHCHECK</c> runs it, because the runtime image carries no curl or wget.
/// Default URL: <c>SERVING_HEALTHCHECK_URL</c>, else <c>http://127.0.0.1:8000/readyz</c>.
/// </summary>
internal static class HealthCheckCommand
{
    public const string Verb = "healthcheck";
    public const string DefaultUrl = "http://127.0.0.1:8000/readyz";

    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter error)
    {
        string url = args.Count > 0 ? args[0] : Environment.GetEnvironmentVariable("SERVING_HEALTHCHECK_URL") is { Length: > 0 } env ? env : DefaultUrl;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            await error.WriteLineAsync($"healthcheck: '{url}' is not an http(s) URL");
            return 2;
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await http.GetAsync(uri);
            if (response.IsSuccessStatusCode)
                return 0;
            await error.WriteLineAsync($"healthcheck: {uri} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            return 1;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            await error.WriteLineAsync($"healthcheck: {uri}: {ex.Message}");
            return 1;
        }
    }
}
