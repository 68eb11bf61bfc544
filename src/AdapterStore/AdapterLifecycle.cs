using Serving.AdapterStore.Files;
using Serving.AdapterStore.Peft;
using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Sources;
using Serving.Contracts;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;

namespace Serving.AdapterStore;

/// <summary>
/// The adapter lifecycle behind one facade: the rules for names and paths, registration (fetch the files from their
/// source under the caller's read policy, validate them against the base model, record the content version), removal,
/// and reading a registered version's weights again for the tiers. Everything it refuses or fails is an
/// <see cref="AdapterStoreException"/>; who may do what (tenants, keys) is the API layer's to decide before calling.
/// Running requests keep the version they were resolved to; new requests get the new one.
/// </summary>
/// <param name="catalog">Registered and store-folder adapters.</param>
/// <param name="sources">Where files come from (local paths, S3).</param>
/// <param name="options">Size, rank and time limits.</param>
/// <param name="model">The base model adapters must fit.</param>
/// <param name="baseModelIds">The base model's names (its id, then any aliases), which no adapter may take.</param>
/// <param name="time">Registration times.</param>
public sealed class AdapterLifecycle(AdapterCatalog catalog, AdapterSourceSet sources, AdapterStoreOptions options, ModelConfig model, IReadOnlyList<string> baseModelIds,
    TimeProvider time)
{
    // adapter_config.json facts per version: versions are immutable, so each is read once.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<AdapterVersionKey, AdapterDetails> _details = new();

    public AdapterCatalog Catalog => catalog;

    /// <summary>An adapter name as clients send it (lookups, removal).</summary>
    public AdapterId ParseName(string? name)
    {
        if (string.IsNullOrEmpty(name))
            throw Bad(AdapterStoreSubject.Name, "is required");
        if (!AdapterId.TryParse(name, out var id, out string? error))
            throw Bad(AdapterStoreSubject.Name, error!);
        if (baseModelIds.Contains(name, StringComparer.Ordinal))
            throw Bad(AdapterStoreSubject.Name, "is the base model's id");
        return id;
    }

    /// <summary>
    /// A name to register: also not reserved (<c>auto</c>, the base model's id, in any letter case) and not an existing
    /// adapter's name in another letter case (which would route or bill differently on case-insensitive gateways).
    /// </summary>
    public AdapterId ParseNewName(string? name)
    {
        var id = ParseName(name);
        if (id.IsReserved)
            throw Bad(AdapterStoreSubject.Name, $"'{id}' is reserved: model \"{AdapterId.Auto}\" asks the server to route (names are compared ignoring case)");
        if (baseModelIds.FirstOrDefault(b => string.Equals(id.Value, b, StringComparison.OrdinalIgnoreCase)) is { } baseName)
            throw Bad(AdapterStoreSubject.Name, $"'{id}' is the base model's id '{baseName}' in another letter case (names are compared ignoring case)");
        if (catalog.List().FirstOrDefault(other => other != id && string.Equals(other.Value, id.Value, StringComparison.OrdinalIgnoreCase)) is { Value: not null } clash)
            throw Bad(AdapterStoreSubject.Name, $"'{id}' differs from the existing adapter '{clash}' only in letter case (names are compared ignoring case)");
        return id;
    }

    /// <summary>A path to register from: present, and free of characters no adapter path has.</summary>
    public static void CheckPath(string? path)
    {
        if (string.IsNullOrEmpty(path))
            throw Bad(AdapterStoreSubject.Path, "is required");
        if (LocalAdapterPath.HasInvalidCharacter(path))
            throw Bad(AdapterStoreSubject.Path, "contains a NUL or another control character, which no adapter path has");
    }

    /// <summary>Registers (or replaces: a hot swap) adapter <paramref name="id"/> from <paramref name="path"/>.</summary>
    /// <param name="id">A name that passed <see cref="ParseNewName"/>.</param>
    /// <param name="path">A local folder or an s3:// URI that passed <see cref="CheckPath"/>.</param>
    /// <param name="policy">What the caller may read: trusted, or confined to its folders after every link is resolved.</param>
    /// <param name="tenant">The owner; null = shared.</param>
    /// <param name="ct">The caller going away, or shutdown.</param>
    /// <param name="tenantLimit">Registrations <paramref name="tenant"/> may hold, for callers the API layer limits; null: none.</param>
    /// <param name="processOnly">For this process only (<see cref="AdapterRecord.ProcessOnly"/>).</param>
    /// <returns>The new record and the one it replaced, if any.</returns>
    public async Task<(AdapterRecord Record, AdapterRecord? Previous)> RegisterAsync(AdapterId id, string path, AdapterReadPolicy policy, string? tenant,
        CancellationToken ct, int? tenantLimit = null, bool processOnly = false)
    {
        if (tenantLimit is int limit)
            catalog.Registry.CheckRoomFor(tenant, id, limit);
        var source = sources.For(path)
            ?? throw Bad(AdapterStoreSubject.Path, $"'{path}' uses a URI scheme this server has no source for (local folders and s3://)");
        using var files = await FetchAsync(source, path, id, policy, ct).ConfigureAwait(false);
        string shape;
        try
        {
            shape = AdapterShape.Of(PeftAdapterReader.Read(files, id.Value, model, options.MaxRank));
        }
        catch (AdapterFormatException ex)
        {
            throw new AdapterStoreException(AdapterStoreFailure.InvalidAdapter, AdapterStoreSubject.Path, ex.Message, ex);
        }

        var record = new AdapterRecord(id, source is LocalPathAdapterSource ? files.Folder : path, files.Version, time.GetUtcNow(), tenant, shape, processOnly);
        return (record, catalog.Registry.Put(record, tenantLimit));
    }

    /// <summary>Removes a run-time registration; returns the removed record.</summary>
    public AdapterRecord Unregister(AdapterId id)
    {
        var record = catalog.Registry.Get(id);
        if (record is null || !catalog.Registry.Remove(id))
            throw new AdapterStoreException(AdapterStoreFailure.NotFound, AdapterStoreSubject.Name,
                $"The adapter '{id}' is not registered (adapters in the store folder are removed by deleting their folder).");
        return record;
    }

    /// <summary>
    /// A tier reload: <paramref name="record"/>'s files read again under its read policy, the version taken from the bytes
    /// read (<c>Version</c>). A folder changed in place becomes the registration's new version (same shape; then
    /// <c>Version</c> differs from the record's) or is refused (another shape).
    /// </summary>
    public (LoraAdapterWeights Weights, string Version) ReadWeights(AdapterRecord record, CancellationToken ct)
    {
        AdapterFiles files;
        try
        {
            files = sources.Load(record, AdapterCatalog.ReadPolicyFor(record, options.MaxAdapterBytes, options.ReadTimeout), ct);
        }
        catch (AdapterFileException ex) when (ex.Problem == AdapterFileProblem.TimedOut)
        {
            throw new AdapterStoreException(AdapterStoreFailure.Unavailable, AdapterStoreSubject.Path, $"adapter '{record.Id}': {ex.File} {ex.Message}", ex);
        }
        catch (AdapterFileException ex)
        {
            throw Invalid(new AdapterFormatException(record.Id.Value, ex.File ?? "adapter folder", null, ex.Message));
        }
        catch (AdapterFormatException ex)
        {
            throw Invalid(ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new AdapterStoreException(AdapterStoreFailure.InvalidAdapter, AdapterStoreSubject.Path, ex.Message, ex);
        }
        catch (Exception ex) when (IsSourceOutage(ex))
        {
            throw new AdapterStoreException(AdapterStoreFailure.Unavailable, AdapterStoreSubject.Path, ex.Message, ex);
        }

        try
        {
            using var read = files;
            var weights = PeftAdapterReader.Read(files, record.Id.Value, model, options.MaxRank);
            if (files.Version != record.Version)
                catalog.ChangedInPlace(record, files.Version, AdapterShape.Of(weights));
            return (weights, files.Version);
        }
        catch (AdapterFormatException ex)
        {
            throw Invalid(ex);
        }
    }

    /// <summary>
    /// Versions come from content at every load: each registered local adapter is read again, and one whose files changed
    /// in place while the server was down gets its new version now (<c>NewVersion</c>), or is reported (<c>Error</c>) when
    /// it no longer reads or fits. Remote versions are verified against their store on every fetch instead.
    /// </summary>
    public IReadOnlyList<(AdapterRecord Record, string? NewVersion, string? Error)> VerifyRegisteredVersions()
    {
        var changed = new List<(AdapterRecord, string?, string?)>();
        foreach (var record in catalog.Registry.All())
        {
            if (!LocalAdapterPath.IsLocal(record.Source))
                continue;
            try
            {
                using var files = AdapterFileReader.Read(record.Source, AdapterCatalog.ReadPolicyFor(record, options.MaxAdapterBytes, options.ReadTimeout), CancellationToken.None);
                if (files.Version == record.Version)
                    continue;
                var weights = PeftAdapterReader.Read(files, record.Id.Value, model, options.MaxRank);
                catalog.ChangedInPlace(record, files.Version, AdapterShape.Of(weights));
                changed.Add((record, files.Version, null));
            }
            catch (Exception ex) when (ex is AdapterFileException or AdapterFormatException)
            {
                changed.Add((record, null, ex.Message));
            }
        }

        return changed;
    }

    /// <summary>
    /// An optional file an adapter ships beside its weights (e.g. routing examples), read from its version's local folder
    /// under its read policy; null when it has none. A file that cannot be read is InvalidAdapter, with the rule broken.
    /// </summary>
    public byte[]? ReadOptionalFile(AdapterRecord record, string fileName, long maxBytes)
    {
        try
        {
            return AdapterFileReader.ReadOptional(sources.EnsureLocal(record), fileName, maxBytes,
                AdapterCatalog.ReadPolicyFor(record, options.MaxAdapterBytes, options.ReadTimeout), CancellationToken.None);
        }
        catch (AdapterFileException ex)
        {
            throw new AdapterStoreException(AdapterStoreFailure.InvalidAdapter, AdapterStoreSubject.Path, ex.Message, ex);
        }
    }

    /// <summary>
    /// <paramref name="record"/>'s details from its version's local files; null while they are only at a remote source
    /// (nothing is downloaded for a status call), or when they changed or vanished since registration.
    /// </summary>
    public AdapterDetails? Describe(AdapterRecord record)
    {
        var key = new AdapterVersionKey(record.Id, record.Version);
        if (_details.TryGetValue(key, out var known))
            return known;
        if (!sources.IsOnDisk(record))
            return null;
        try
        {
            string folder = sources.EnsureLocal(record);
            var policy = AdapterCatalog.ReadPolicyFor(record, options.MaxAdapterBytes, options.ReadTimeout);
            byte[]? configBytes = AdapterFileReader.ReadOptional(folder, PeftLoraConfig.FileName, AdapterReadPolicy.MaxConfigBytes, policy, CancellationToken.None);
            if (configBytes is null)
                return null;
            var config = PeftLoraConfig.Parse(System.Text.Encoding.UTF8.GetString(configBytes), record.Id.Value);
            string[] targets = config.TargetModuleNames?.ToArray() ?? [config.TargetModuleRegex?.ToString() ?? ""];
            long size = AdapterFileReader.Status(folder, policy).Weights.Size;
            return _details[key] = new AdapterDetails(config.Rank, config.Alpha, targets, size);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or AdapterFormatException or AdapterFileException)
        {
            return null;
        }
    }

    /// <summary>Errors that mean the source cannot be read now (retry later), as opposed to a bad adapter.</summary>
    internal static bool IsSourceOutage(Exception ex) =>
        ex is IOException or HttpRequestException or Amazon.Runtime.AmazonServiceException or Polly.ExecutionRejectedException;

    private static async Task<AdapterFiles> FetchAsync(IAdapterSource source, string uri, AdapterId id, AdapterReadPolicy policy, CancellationToken ct)
    {
        try
        {
            return await source.FetchAsync(uri, id.Value, policy, ct).ConfigureAwait(false);
        }
        catch (ArgumentException ex)
        {
            throw Bad(AdapterStoreSubject.Path, ex.Message);
        }
        catch (AdapterFileException ex) when (ex.Problem == AdapterFileProblem.NotFound)
        {
            // One answer for missing and for outside the caller's folders once links are resolved: probing reveals nothing.
            throw new AdapterStoreException(AdapterStoreFailure.NotFound, AdapterStoreSubject.Path, ex.File is not null ? $"adapter folder '{uri}' has no {ex.File}"
                : !policy.IsConfined ? $"adapter folder '{uri}' does not exist"
                : $"adapter folder '{uri}' does not exist or is outside the sources this key may register adapters from", ex);
        }
        catch (AdapterFileException ex) when (ex.Problem == AdapterFileProblem.TimedOut)
        {
            throw new AdapterStoreException(AdapterStoreFailure.Unavailable, AdapterStoreSubject.Path, $"adapter folder '{uri}': {ex.File} {ex.Message}", ex);
        }
        catch (AdapterFileException ex)
        {
            throw new AdapterStoreException(AdapterStoreFailure.InvalidAdapter, AdapterStoreSubject.Path, $"adapter folder '{uri}': {ex.File ?? "the folder"} {ex.Message}", ex);
        }
        catch (FileNotFoundException ex)
        {
            throw new AdapterStoreException(AdapterStoreFailure.NotFound, AdapterStoreSubject.Path, ex.Message, ex);
        }
        catch (AdapterFormatException ex)
        {
            throw Invalid(ex);
        }
        catch (Exception ex) when (IsSourceOutage(ex))
        {
            throw new AdapterStoreException(AdapterStoreFailure.Unavailable, AdapterStoreSubject.Path, $"adapter source '{uri}' is unavailable: {ex.Message}", ex);
        }
    }

    private static AdapterStoreException Bad(AdapterStoreSubject subject, string rule) => new(AdapterStoreFailure.BadRequest, subject, rule);

    private static AdapterStoreException Invalid(AdapterFormatException ex) => new(AdapterStoreFailure.InvalidAdapter, AdapterStoreSubject.Path, ex.Message, ex);
}
