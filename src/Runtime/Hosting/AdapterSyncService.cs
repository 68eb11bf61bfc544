using Microsoft.Extensions.Options;
using Serving.AdapterStore;
using Serving.AdapterStore.Sync;

namespace Serving.Runtime.Hosting;

/// <summary>
/// Runs the adapter store's <see cref="AdapterStoreSync"/> every <c>Serving:Adapters:SyncIntervalSeconds</c> once the
/// model is loaded, when <c>Serving:Adapters:SyncFrom</c> names a shared store, and logs what each pass did.
/// </summary>
public sealed class AdapterSyncService(ModelHost host, IOptions<AdapterStoreOptions> options, TimeProvider time, ILogger<AdapterSyncService> logger)
    : BackgroundService
{
    /// <summary>A pass slower than this is reported at Information even when it changed nothing.</summary>
    private static readonly TimeSpan SlowPass = TimeSpan.FromSeconds(5);

    private readonly TaskCompletionSource _firstPass = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>True once the first pass has run (or when no store is configured): readiness waits for it.</summary>
    public bool FirstPassDone => string.IsNullOrEmpty(options.Value.SyncFrom) || _firstPass.Task.IsCompleted;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        if (string.IsNullOrEmpty(o.SyncFrom))
            return;
        while (!host.IsLoaded)
            await Task.Delay(TimeSpan.FromMilliseconds(100), time, stoppingToken);
        var sync = new AdapterStoreSync(host.Lifecycle, host.Sources.S3 ?? throw new InvalidOperationException("Serving:Adapters:SyncFrom needs the S3 source"),
            o.SyncFrom, o);
        var interval = TimeSpan.FromSeconds(o.SyncIntervalSeconds);
        for (int passNumber = 1; !stoppingToken.IsCancellationRequested; passNumber++)
        {
            long started = time.GetTimestamp();
            var pass = await sync.SyncOnceAsync(stoppingToken);
            Log(sync.Root, pass);
            // The first pass, and every pass that changed something or took long, gets a line; the rest only at Debug.
            var elapsed = time.GetElapsedTime(started);
            logger.Log(passNumber == 1 || pass.Changes > 0 || elapsed > SlowPass ? LogLevel.Information : LogLevel.Debug,
                "Adapter store sync pass {Pass} over {Root}: {Changes} changes, {Problems} problems, {Seconds:F1} s; next in {Interval} s",
                passNumber, sync.Root, pass.Changes, pass.Events.Count(e => e.Error is not null) + (pass.ListError is null ? 0 : 1), elapsed.TotalSeconds, interval.TotalSeconds);
            _firstPass.TrySetResult();
            await Task.Delay(interval, time, stoppingToken);
        }
    }

    private void Log(string root, AdapterSyncPass pass)
    {
        if (pass.ListError is not null)
            logger.LogWarning("Adapter store {Root} could not be listed ({Error}); the registry is left as it is", root, pass.ListError);
        foreach (var e in pass.Events)
        {
            switch (e.Action)
            {
                case AdapterSyncAction.Registered or AdapterSyncAction.Replaced:
                    logger.LogInformation("Adapter store: {Action} {Adapter} version {Version} from {Uri}", e.Action == AdapterSyncAction.Registered ? "registered" : "replaced",
                        e.Name, e.Version, e.Uri);
                    break;
                case AdapterSyncAction.Skipped:
                    logger.LogWarning("Adapter store: skipped {Uri}: {Error}", e.Uri, e.Error);
                    break;
                case AdapterSyncAction.NotFetched:
                    logger.LogWarning("Adapter store: {Uri} not fetched ({Error}); retried next pass", e.Uri, e.Error);
                    break;
                case AdapterSyncAction.Unregistered:
                    logger.LogInformation("Adapter store: unregistered {Adapter} (no longer in {Root})", e.Name, root);
                    break;
            }
        }
    }
}
