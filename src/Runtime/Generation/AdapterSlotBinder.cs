using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Tiers;
using Serving.Batching;
using Serving.Batching.Scheduling;
using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Runtime.Hosting;
using Serving.Runtime.Observability;

namespace Serving.Runtime.Generation;

/// <summary>
/// Device slots for the scheduler over the adapter store's tiers, on the engine loop between steps (so no step ever sees a
/// half-written slot). Missing adapters are first read into the host-memory tier on the thread pool (the loop keeps stepping
/// other requests meanwhile); a resident version is pinned, a cold one is copied from host memory into a free or evicted
/// slot. The versions are the ones the request was resolved to when it arrived (<see cref="PinnedAdapters"/>): a hot swap
/// does not affect it, even if it is preempted and resumes, and no name is resolved on the loop.
/// </summary>
/// <param name="host">The model whose adapter arena the slots are.</param>
/// <param name="hostCache">The host-memory tier slots are filled from.</param>
/// <param name="pinned">The records request ids were resolved to (the engine's request table).</param>
/// <param name="metrics">Slot hits, misses and fill times.</param>
internal sealed class AdapterSlotBinder(ModelHost host, HostAdapterCache hostCache, Func<RequestId, PinnedAdapters> pinned,
    Serving.Runtime.Observability.ServingMetrics? metrics = null) : IAdapterSlotProvider
{
    private readonly DeviceSlotTable _table = new(host.Model.Model.Adapters!.Slots);

    /// <summary>Each DoRA host copy's preparation, dropped with the copy (<see cref="Prepared"/>).</summary>
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<LoraAdapterWeights, Lazy<Task>> _doraScales = new();

    /// <summary>Preparations not yet finished (<see cref="WaitForPreparations"/>).</summary>
    private readonly HashSet<Task> _running = [];

    public DeviceSlotTable Slots => _table;

    public AdapterAcquisition TryAcquire(RequestId request, AdapterMix mix)
    {
        if (mix.IsBaseModel)
            return AdapterAcquisition.Ready([]);
        var records = pinned(request).Records;
        var reads = records.Select(hostCache.GetOrLoad).ToList();   // starts every read at once (prefetch)
        if (reads.FirstOrDefault(r => r.IsFaulted) is Task failed)
            return AdapterAcquisition.Failed(failed.Exception!.InnerException!);
        var pending = reads.Where(r => !r.IsCompleted).ToArray();
        if (pending.Length > 0)
            return AdapterAcquisition.Loading(Task.WhenAny(pending));

        // DoRA rescales a projection's whole output by its own magnitudes: two adapters' scales (or a weight other than 1)
        // have no defined meaning, so a DoRA adapter runs alone.
        if ((records.Count > 1 || mix.Entries[0].Weight != 1) && reads.FirstOrDefault(r => r.Result.IsDora) is { } dora)
            return AdapterAcquisition.Failed(new RequestFailedException(RequestFailure.Invalid,
                $"adapter '{dora.Result.Name}' is a DoRA adapter: DoRA does not compose linearly, so it runs alone at weight 1, not in a mixture", "adapters"));

        var preparations = records.Select((record, i) => Prepared(record, reads[i].Result)).ToArray();
        if (preparations.FirstOrDefault(p => p.IsFaulted) is Task unfit)
            return AdapterAcquisition.Failed(unfit.Exception!.InnerException!);
        var preparing = preparations.Where(p => !p.IsCompleted).ToArray();
        if (preparing.Length > 0)
            return AdapterAcquisition.Loading(Task.WhenAny(preparing));

        var bound = new List<AdapterSlotWeight>();
        for (int i = 0; i < records.Count; i++)
        {
            var key = new AdapterVersionKey(records[i].Id, records[i].Version);
            if (!_table.TryAcquire(key, out var slot, out bool needsLoad))
            {
                Release(bound);
                return AdapterAcquisition.NoFreeSlot;
            }

            if (needsLoad)
            {
                long started = System.Diagnostics.Stopwatch.GetTimestamp();
                try
                {
                    host.Model.Model.Adapters!.Load(slot.Value, reads[i].Result);
                }
                catch (ArgumentException ex)
                {
                    // Weights the files allowed but the served model does not (a DoRA norm of zero): the slot goes back free.
                    _table.Abandon(slot);
                    Release(bound);
                    return AdapterAcquisition.Failed(new RequestFailedException(RequestFailure.Unprocessable, $"adapter '{records[i].Id}': {ex.Message}", "model"));
                }

                metrics?.AdapterLoadSeconds.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds, ServingMetrics.Tag("tier", "device"));
            }

            bound.Add(new AdapterSlotWeight(slot.Value, mix.Entries[i].Weight));
        }

        return AdapterAcquisition.Ready(bound);
    }

    public void Prefetch(RequestId request, AdapterMix mix)
    {
        // Errors are reported when the request is admitted.
        foreach (var record in pinned(request).Records)
            _ = Warm(record);
    }

    /// <summary>
    /// Reads <paramref name="record"/> into the host tier and, for a DoRA adapter, takes (or reads back) its scales, so a
    /// slot fill then only copies; ends when both are done, faulted as the read or the norms failed.
    /// </summary>
    public Task Warm(AdapterRecord record) =>
        hostCache.GetOrLoad(record).ContinueWith(read => read.IsCompletedSuccessfully ? Prepared(record, read.Result) : read, CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).Unwrap();

    /// <summary>
    /// A DoRA adapter's scales taken over the served base weights on the thread pool (<see cref="Serving.Engine.Lora.LoraSlotArena.PrepareDora"/>),
    /// once per host copy, so the slot fill on the engine loop only copies them: the norms (one [out, in]·[in, r] product
    /// per module, most of a DoRA fill) no longer stall every other request's steps. Completed at once for a plain adapter.
    /// </summary>
    private Task Prepared(AdapterRecord record, LoraAdapterWeights weights)
    {
        if (!weights.IsDora)
            return Task.CompletedTask;
        return _doraScales.GetValue(weights, w => new Lazy<Task>(() => Track(Task.Run(() =>
        {
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            var arena = host.Model.Model.Adapters!;
            var files = host.DoraScaleFiles;
            if (files?.TryRead(record, w) is { } kept && TryUse(arena, w, kept, files))
            {
                metrics?.AdapterLoadSeconds.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds, ServingMetrics.Tag("tier", "dora_scales_file"));
                return;
            }

            try
            {
                arena.PrepareDora(w);
            }
            catch (ArgumentException ex)
            {
                // Weights the files allowed but the served model does not (a DoRA norm of zero).
                throw new RequestFailedException(RequestFailure.Unprocessable, $"adapter '{record.Id}': {ex.Message}", "model");
            }

            metrics?.AdapterLoadSeconds.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds, ServingMetrics.Tag("tier", "dora_scales"));
            files?.Write(record, w, arena.DoraScales(w));
        })))).Value;
    }

    /// <summary>Gives <paramref name="weights"/> the scales read back; false (the norms are taken again) when they do not fit it.</summary>
    private static bool TryUse(Serving.Engine.Lora.LoraSlotArena arena, LoraAdapterWeights weights, IReadOnlyList<Serving.Engine.Lora.DoraRowScale> kept, DoraScaleFiles files)
    {
        try
        {
            arena.UseDoraScales(weights, kept);
            return true;
        }
        catch (ArgumentException ex)
        {
            files.Rejected(weights.Name, ex.Message);
            return false;
        }
    }

    private Task Track(Task preparation)
    {
        lock (_running)
            _running.Add(preparation);
        preparation.ContinueWith(done =>
        {
            lock (_running)
                _running.Remove(done);
        }, TaskScheduler.Default);
        return preparation;
    }

    /// <summary>
    /// Waits for the DoRA preparations still reading the base weights: the model may be disposed only after them.
    /// </summary>
    /// <param name="timeout">How long to wait at most.</param>
    public void WaitForPreparations(TimeSpan timeout)
    {
        Task[] running;
        lock (_running)
            running = [.. _running];
        try
        {
            Task.WaitAll(running, timeout);
        }
        catch (AggregateException)
        {
            // Their failures were the requests' to report.
        }
    }

    public void Release(IReadOnlyList<AdapterSlotWeight> slots)
    {
        foreach (var s in slots)
            _table.Release(new Serving.Contracts.SlotIndex(s.Slot));
    }
}
