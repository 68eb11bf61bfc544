using System.Reflection;

namespace Serving.Server.Hosting;

/// <summary>
/// The web console (<c>GET /</c>): one page, one script, one stylesheet, compiled into the server assembly from
/// <c>src/Server/ConsoleAssets</c> (no CDN: the machines reach no internet). The page itself holds no data, so it is served
/// without a key; everything it shows comes from the API with the key the user gives it. A strict Content-Security-Policy
/// allows only these files and calls to this origin.
/// </summary>
internal static class ConsoleAssets
{
    public const string ScriptPath = "/console/console.js";
    public const string StylePath = "/console/console.css";

    /// <summary>Paths served without a key.</summary>
    public static bool IsConsolePath(PathString path) => path == "/" || path == ScriptPath || path == StylePath;

    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private static readonly IReadOnlyDictionary<string, (string Resource, string ContentType)> Files = new Dictionary<string, (string, string)>
    {
        ["/"] = ("index.html", "text/html; charset=utf-8"),
        [ScriptPath] = ("console.js", "text/javascript; charset=utf-8"),
        [StylePath] = ("console.css", "text/css; charset=utf-8"),
    };

    private static readonly Lazy<IReadOnlyDictionary<string, byte[]>> Contents = new(() =>
        Files.ToDictionary(f => f.Key, f => Read(f.Value.Resource)));

    public static void Map(WebApplication app)
    {
        // Whether calls need a key is no secret (every call without one says so); the page uses it to ask first.
        bool keys = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Security.AuthOptions>>().Value.AllKeys.Any();
        var page = System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(Contents.Value["/"]).Replace("{{AUTH}}", keys ? "required" : "open", StringComparison.Ordinal));
        foreach (var (path, (_, contentType)) in Files)
            app.MapGet(path, (HttpContext ctx) =>
            {
                var headers = ctx.Response.Headers;
                headers.ContentSecurityPolicy = ContentSecurityPolicy;
                headers.XContentTypeOptions = "nosniff";
                headers["Referrer-Policy"] = "no-referrer";
                headers.CacheControl = "no-cache";
                return Results.Bytes(path == "/" ? page : Contents.Value[path], contentType);
            });
    }

    private static byte[] Read(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Serving.Server.ConsoleAssets." + name)
            ?? throw new InvalidOperationException($"the console asset {name} is not in the server assembly");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
