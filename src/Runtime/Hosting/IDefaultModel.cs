namespace Serving.Runtime.Hosting;

/// <summary>What the server runs when no model path is configured: the host asks for it at start-up (the server's built-in demo).</summary>
public interface IDefaultModel
{
    /// <summary>
    /// Makes sure the default model (and, when none are configured, the adapters that are quick to make) exist under
    /// <paramref name="cacheRoot"/>: what the server needs to listen.
    /// </summary>
    /// <param name="cacheRoot">The server's cache folder.</param>
    /// <param name="adaptersConfigured">Whether an adapter store folder was configured (then no default adapters are provided).</param>
    DefaultModelFolders Ensure(string cacheRoot, bool adaptersConfigured);

    /// <summary>
    /// The default adapters that take long to make (trained ones), made while the server already serves: announced in
    /// <paramref name="preparing"/> before this returns, each written into the store root when done (where the store finds
    /// it like any adapter) and then removed from <paramref name="preparing"/>. The task ends when all are done, or at
    /// <paramref name="stopping"/>.
    /// </summary>
    Task PrepareAdaptersAsync(DefaultModelFolders folders, PreparingAdapters preparing, CancellationToken stopping);
}
