using Microsoft.Extensions.Options;
using Serving.AdapterStore;
using Serving.AdapterStore.Sources;
using Serving.Runtime.Hosting;
using Serving.Server.Hosting;
using Serving.Server.OpenAi;
using Serving.Server.Security;

namespace Serving.Server.Adapters;

/// <summary>
/// Mirrors a shared S3-compatible adapter store (<c>Serving:Adapters:SyncFrom = s3://bucket/prefix</c>) into this
/// replica's registry, so every replica behind a load balancer serves the same adapters: each sub-prefix holding a
/// PEFT adapter is registered as a shared adapter named after it, through the same path as <c>load_lora_adapter</c>
/// (validated before it can reach a batch; a changed upload is a hot swap), and one deleted from the store is
/// unregistered. Changes are noticed by the objects' ETags, so an unchanged store costs one listing per interval.
/// An invalid upload is logged once per version and skipped; a store outage leaves the registry as it is.
/// </summary>
internal sealed class AdapterStoreSync(ModelHost host, AdapterRegistrar registrar, IOptions<AdapterStoreOptions> options, TimeProvider time,
    ILogger<AdapterStoreSync> logger) : BackgroundService
{
    private readonly Dictionary<string, string> _seen = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _firstPass = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>True once the first pass has run (or when no store is configured): readiness waits for it.</summary>
    public bool FirstPassDone => string.IsNullOrEmpty(options.Value.SyncFrom) || _firstPass.Task.IsCompleted;

    private string Root => options.Value.SyncFrom!.TrimEnd('/');

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (string.IsNullOrEmpty(options.Value.SyncFrom))
            return;
        while (!host.IsLoaded)
            await Task.Delay(TimeSpan.FromMilliseconds(100), time, stoppingToken);
        var interval = TimeSpan.FromSeconds(options.Value.SyncIntervalSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            await SyncOnceAsync(stoppingToken);
            _firstPass.TrySetResult();
            await Task.Delay(interval, time, stoppingToken);
        }
    }

    /// <summary>One pass: register new and changed adapters, unregister removed ones. Returns the number of changes.</summary>
    public async Task<int> SyncOnceAsync(CancellationToken ct)
    {
        var s3 = host.Sources.S3 ?? throw new InvalidOperationException("Serving:Adapters:SyncFrom needs the S3 source");
        IReadOnlyDictionary<string, string> listed;
        try
        {
            listed = await s3.ListAdaptersAsync(Root, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            logger.LogWarning("Adapter store {Root} could not be listed ({Error}); the registry is left as it is", Root, ex.Message);
            return 0;
        }

        int changes = 0;
        foreach (var (name, fingerprint) in listed.OrderBy(l => l.Key, StringComparer.Ordinal))
        {
            if (_seen.TryGetValue(name, out var known) && known == fingerprint)
                continue;
            string uri = $"{Root}/{name}";
            try
            {
                var (record, previous) = await registrar.RegisterAsync(Caller.Open, name, uri, "name", "path", ct);
                changes++;
                logger.LogInformation("Adapter store: {Action} {Adapter} version {Version} from {Uri}", previous is null ? "registered" : "replaced", name, record.Version, uri);
            }
            catch (ApiException ex) when (ex.Status is 400 or 403 or 404 or 422)
            {
                logger.LogWarning("Adapter store: skipped {Uri}: {Error}", uri, ex.Message);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                logger.LogWarning("Adapter store: {Uri} not fetched ({Error}); retried next pass", uri, ex.Message);
                continue;
            }

            _seen[name] = fingerprint;
        }

        foreach (var record in host.Adapters.Registry.All().ToArray())
        {
            bool fromStore = record.Source.StartsWith(Root + "/", StringComparison.Ordinal) && record.Source.IndexOf('/', Root.Length + 1) < 0;
            string name = record.Source[(Root.Length + 1)..];
            if (fromStore && !listed.ContainsKey(name) && record.Tenant is null && host.Adapters.Registry.Remove(record.Id))
            {
                _seen.Remove(name);
                changes++;
                logger.LogInformation("Adapter store: unregistered {Adapter} (no longer in {Root})", record.Id, Root);
            }
        }

        return changes;
    }
}
