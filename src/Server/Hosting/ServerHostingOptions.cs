namespace Serving.Server.Hosting;

/// <summary><c>Serving</c>: the settings of the process itself (the other sections are the subsystems').</summary>
public sealed class ServerHostingOptions
{
    public const string Section = "Serving";

    /// <summary>On SIGTERM: seconds running requests get to finish after the server stops accepting.</summary>
    public double ShutdownGraceSeconds { get; set; } = 30;

    /// <summary>OpenTelemetry traces.</summary>
    public TracingOptions Tracing { get; set; } = new();

    /// <summary>
    /// The path prefix a proxy serves this server under (vLLM's <c>--root-path</c>, e.g. <c>/serving</c>): a request's path
    /// with it is served as the path without it, and paths without it are still served. Null: none.
    /// </summary>
    public string? RootPath { get; set; }

    /// <summary>Browser origins allowed to call the API.</summary>
    public CorsOptions Cors { get; set; } = new();

    /// <summary>The problems with the values, each naming its setting.</summary>
    public IEnumerable<string> Validate()
    {
        if (RootPath is { Length: > 0 } root && (!root.StartsWith('/') || root.EndsWith('/') || root.Contains("//", StringComparison.Ordinal) || root.Any(char.IsWhiteSpace)))
            yield return $"Serving:RootPath (--root-path) '{root}' must be a path such as /serving: a leading slash, none at the end";
        foreach (string problem in Cors.Validate())
            yield return problem;
    }
}
