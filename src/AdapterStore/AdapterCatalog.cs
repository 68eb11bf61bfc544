using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Sources;

namespace Serving.AdapterStore;

/// <summary>
/// Every adapter the server can run: those registered at run time (which win on a name clash) and the sub-folders of
/// the local store root. Resolving gives the folder and the current content version; versions of local folders are
/// cached by file size and timestamp so a request does not rehash the weights.
/// </summary>
internal sealed class AdapterCatalog(LocalFolderAdapterSource? local, AdapterRegistry registry)
{
    private readonly Dictionary<string, (long Length, DateTime Written, string Version)> _localVersions = [];
    private readonly Lock _lock = new();

    public AdapterRegistry Registry => registry;

    public IReadOnlyList<AdapterId> List() =>
        registry.All().Select(r => r.Id).Concat(local?.List() ?? []).Distinct().OrderBy(i => i.Value, StringComparer.Ordinal).ToList();

    public AdapterRecord? Resolve(AdapterId id)
    {
        if (registry.Get(id) is AdapterRecord record)
            return record;
        if (local?.Resolve(id) is not string folder)
            return null;
        return new AdapterRecord(id, folder, LocalVersion(folder), DateTimeOffset.MinValue);
    }

    private string LocalVersion(string folder)
    {
        var weights = new FileInfo(Path.Combine(folder, "adapter_model.safetensors"));
        var config = new FileInfo(Path.Combine(folder, "adapter_config.json"));
        long length = (weights.Exists ? weights.Length : -1) ^ (config.Length << 32);
        var written = weights.Exists && weights.LastWriteTimeUtc > config.LastWriteTimeUtc ? weights.LastWriteTimeUtc : config.LastWriteTimeUtc;
        lock (_lock)
        {
            if (_localVersions.TryGetValue(folder, out var cached) && cached.Length == length && cached.Written == written)
                return cached.Version;
        }

        string version = weights.Exists ? AdapterContentHash.Compute(folder) : "missing";
        lock (_lock)
            _localVersions[folder] = (length, written, version);
        return version;
    }
}
