using Serving.Contracts;

namespace Serving.AdapterStore.Sources;

/// <summary>
/// The local folder store: <c>ROOT/&lt;adapter id&gt;/adapter_config.json</c> + <c>adapter_model.safetensors</c>.
/// Ids are validated by <see cref="AdapterId"/> and the resolved folder (after following links) must stay inside
/// the root, so no request can make the server read outside it.
/// </summary>
public sealed class LocalFolderAdapterSource(string root)
{
    public string Root { get; } = System.IO.Path.GetFullPath(root);

    /// <summary>Adapter ids present under the root (sub-folders holding an adapter_config.json).</summary>
    public IReadOnlyList<AdapterId> List() =>
        !Directory.Exists(Root) ? [] :
        Directory.GetDirectories(Root)
            .Select(d => System.IO.Path.GetFileName(d))
            .Where(name => AdapterId.TryParse(name, out var id, out _) && !id.IsReserved && File.Exists(System.IO.Path.Combine(Root, name, "adapter_config.json")))
            .Order(StringComparer.Ordinal)
            .Select(AdapterId.Parse)
            .ToList();

    /// <summary>The adapter's folder, or null when it does not exist here.</summary>
    public string? Resolve(AdapterId id)
    {
        if (id.IsReserved)
            return null;
        string folder = System.IO.Path.Combine(Root, id.Value);
        if (!Directory.Exists(folder) || !File.Exists(System.IO.Path.Combine(folder, "adapter_config.json")))
            return null;
        string real = RealPath(folder);
        string rootReal = RealPath(Root);
        if (!real.StartsWith(rootReal + System.IO.Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new UnauthorizedAccessException($"adapter '{id}' resolves to '{real}', outside the adapter store root");
        return folder;
    }

    private static string RealPath(string path)
    {
        var info = new DirectoryInfo(path);
        var target = info.ResolveLinkTarget(returnFinalTarget: true);
        return System.IO.Path.GetFullPath(target?.FullName ?? info.FullName).TrimEnd(System.IO.Path.DirectorySeparatorChar);
    }
}
