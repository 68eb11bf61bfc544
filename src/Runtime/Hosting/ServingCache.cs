namespace Serving.Runtime.Hosting;

/// <summary>The server's cache folder when none is configured: <c>$XDG_CACHE_HOME/serving</c>, else <c>~/.cache/serving</c>.</summary>
public static class ServingCache
{
    public static string DefaultRoot()
    {
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "serving");
    }
}
