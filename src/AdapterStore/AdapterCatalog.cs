using Serving.AdapterStore.Files;
using Serving.AdapterStore.Peft;
using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Sources;
using Serving.Contracts;

namespace Serving.AdapterStore;

/// <summary>
/// Every adapter the server can run: those registered at run time (which win on a name clash) and the sub-folders of
/// the local store root. Resolving gives the folder and the current content version; versions of local folders are
/// cached by the files' identity, size and change times (<c>statx</c>), so a request does not rehash the weights and a
/// file rewritten in place, whatever its timestamps claim, is hashed again.
/// </summary>
public sealed class AdapterCatalog(LocalFolderAdapterSource? local, AdapterRegistry registry)
{
    private readonly Dictionary<string, (PosixFiles.Status Config, PosixFiles.Status Weights, string Version)> _localVersions = [];
    private readonly Lock _lock = new();

    public AdapterRegistry Registry => registry;

    public IReadOnlyList<AdapterId> List() =>
        registry.All().Select(r => r.Id).Concat(local?.List() ?? []).Where(id => !id.IsReserved).Distinct().OrderBy(i => i.Value, StringComparer.Ordinal).ToList();

    public AdapterRecord? Resolve(AdapterId id)
    {
        if (id.IsReserved)
            return null;                                   // a registration from before the name was reserved
        if (registry.Get(id) is AdapterRecord record)
            return record;
        if (local?.Resolve(id) is not string folder)
            return null;
        return new AdapterRecord(id, folder, LocalVersion(folder), DateTimeOffset.MinValue);
    }

    /// <summary>
    /// Where a record's files may be read from when they are read again: a tenant's adapter only inside the folder it was
    /// registered from (a link placed there later cannot reach another tenant's files); shared ones anywhere.
    /// </summary>
    public static AdapterReadPolicy ReadPolicyFor(AdapterRecord record, long maxBytes, TimeSpan timeout) =>
        record.Tenant is null || !LocalAdapterPath.IsLocal(record.Source)
            ? AdapterReadPolicy.Trusted(maxBytes, timeout)
            : AdapterReadPolicy.ConfinedTo([record.Source], maxBytes, timeout);

    /// <summary>
    /// <paramref name="record"/>'s files were read again and hash to <paramref name="version"/>, not the record's version:
    /// a change in place. With the registered shape it becomes the registration's new version (so reports, slots and
    /// routing prototypes follow the content); with another shape it is refused until registered again.
    /// </summary>
    public AdapterRecord ChangedInPlace(AdapterRecord record, string version, string shape)
    {
        if (record.Shape is not null && record.Shape != shape)
            throw new AdapterFormatException(record.Id.Value, PeftAdapterReader.WeightsFile, null,
                $"changed in place from {record.Shape} to {shape}; register the adapter again to serve a different shape");
        var updated = record with { Version = version, Shape = shape };
        if (registry.Get(record.Id) is { } current && current.Source == record.Source && current.Version == record.Version)
            registry.Put(current with { Version = version, Shape = shape });
        return updated;
    }

    private string LocalVersion(string folder)
    {
        var trusted = AdapterReadPolicy.Trusted(int.MaxValue, Timeout.InfiniteTimeSpan);
        (PosixFiles.Status Config, PosixFiles.Status Weights) status;
        try
        {
            status = AdapterFileReader.Status(folder, trusted);
        }
        catch (AdapterFileException)
        {
            return "missing";
        }

        lock (_lock)
        {
            if (_localVersions.TryGetValue(folder, out var cached) && cached.Config == status.Config && cached.Weights == status.Weights)
                return cached.Version;
        }

        string version;
        try
        {
            using var files = AdapterFileReader.Read(folder, trusted, CancellationToken.None);
            version = files.Version;
        }
        catch (AdapterFileException)
        {
            return "missing";
        }

        lock (_lock)
            _localVersions[folder] = (status.Config, status.Weights, version);
        return version;
    }
}
