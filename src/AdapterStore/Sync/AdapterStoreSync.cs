using Serving.AdapterStore.Files;
using Serving.AdapterStore.Sources;

namespace Serving.AdapterStore.Sync;

/// <summary>
/// Mirrors a shared S3-compatible adapter store (<c>Serving:Adapters:SyncFrom = s3://bucket/prefix</c>) into this
/// replica's registry, so every replica behind a load balancer serves the same adapters: each sub-prefix holding a
/// PEFT adapter is registered as a shared adapter named after it, through the same <see cref="AdapterLifecycle"/> as a
/// registration by an admin (validated before it can reach a batch; a changed upload is a hot swap), and one deleted from
/// the store is unregistered. Changes are noticed by the objects' ETags, so an unchanged store costs one listing per pass.
/// An invalid upload is reported once per version and skipped; a store outage leaves the registry as it is.
/// Not thread-safe: one pass at a time.
/// </summary>
/// <param name="lifecycle">Registers and removes.</param>
/// <param name="s3">The store's source.</param>
/// <param name="rootUri"><c>s3://bucket/prefix</c>.</param>
/// <param name="options">Size and time limits of a registration.</param>
public sealed class AdapterStoreSync(AdapterLifecycle lifecycle, S3AdapterSource s3, string rootUri, AdapterStoreOptions options)
{
    private readonly Dictionary<string, string> _seen = new(StringComparer.Ordinal);
    private readonly string _root = rootUri.TrimEnd('/');

    public string Root => _root;

    /// <summary>One pass: register new and changed adapters, unregister removed ones.</summary>
    public async Task<AdapterSyncPass> SyncOnceAsync(CancellationToken ct)
    {
        IReadOnlyDictionary<string, string> listed;
        try
        {
            listed = await s3.ListAdaptersAsync(_root, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            return new AdapterSyncPass(ex.Message, []);
        }

        var events = new List<AdapterSyncEvent>();
        foreach (var (name, fingerprint) in listed.OrderBy(l => l.Key, StringComparer.Ordinal))
        {
            if (_seen.TryGetValue(name, out var known) && known == fingerprint)
                continue;
            string uri = $"{_root}/{name}";
            try
            {
                var id = lifecycle.ParseNewName(name);
                AdapterLifecycle.CheckPath(uri);
                var (record, previous) = await lifecycle.RegisterAsync(id, uri, AdapterReadPolicy.Trusted(options.MaxAdapterBytes, options.ReadTimeout), null, ct)
                    .ConfigureAwait(false);
                events.Add(new AdapterSyncEvent(previous is null ? AdapterSyncAction.Registered : AdapterSyncAction.Replaced, name, uri, record.Version));
            }
            catch (AdapterStoreException ex) when (ex.Failure != AdapterStoreFailure.Unavailable)
            {
                string error = ex.Failure == AdapterStoreFailure.BadRequest ? $"'{(ex.Subject == AdapterStoreSubject.Name ? "name" : "path")}' {ex.Message}" : ex.Message;
                events.Add(new AdapterSyncEvent(AdapterSyncAction.Skipped, name, uri, Error: error));
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                events.Add(new AdapterSyncEvent(AdapterSyncAction.NotFetched, name, uri, Error: ex.Message));
                continue;
            }

            _seen[name] = fingerprint;
        }

        var registry = lifecycle.Catalog.Registry;
        foreach (var record in registry.All().ToArray())
        {
            bool fromStore = record.Source.StartsWith(_root + "/", StringComparison.Ordinal) && record.Source.IndexOf('/', _root.Length + 1) < 0;
            if (!fromStore)
                continue;
            string name = record.Source[(_root.Length + 1)..];
            if (!listed.ContainsKey(name) && record.Tenant is null && registry.Remove(record.Id))
            {
                _seen.Remove(name);
                events.Add(new AdapterSyncEvent(AdapterSyncAction.Unregistered, record.Id.Value, record.Source, record.Version));
            }
        }

        return new AdapterSyncPass(null, events);
    }
}
