namespace Serving.Runtime.Hosting;

/// <summary>What the server runs when no model path is configured: the host asks for it at start-up (the server's built-in demo).</summary>
public interface IDefaultModel
{
    /// <summary>Makes sure the default model (and, when none are configured, its adapters) exist under <paramref name="cacheRoot"/>.</summary>
    /// <param name="cacheRoot">The server's cache folder.</param>
    /// <param name="adaptersConfigured">Whether an adapter store folder was configured (then no default adapters are provided).</param>
    DefaultModelFolders Ensure(string cacheRoot, bool adaptersConfigured);
}
