namespace Serving.Server.Hosting;

/// <summary>
/// The paths that answer without an API key and are not counted as requests: this server's probes, vLLM's (which Helm
/// charts, gateways and SageMaker written for vLLM call) and the version.
/// </summary>
internal static class ProbePaths
{
    private static readonly string[] Paths = ["/healthz", "/readyz", "/health", "/ping", "/version"];

    public static bool Contains(PathString path)
    {
        foreach (string probe in Paths)
            if (path.StartsWithSegments(probe))
                return true;
        return false;
    }
}
