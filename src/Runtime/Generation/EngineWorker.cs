using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Serving.AdapterStore;
using Serving.AdapterStore.Tiers;
using Serving.Batching;
using Serving.Batching.Scheduling;
using Serving.Contracts;
using Serving.Contracts.Configuration;
using Serving.Engine.Generation;
using Serving.Engine.Model;
using Serving.Runtime.Hosting;
using Serving.Runtime.Observability;
using Serving.Contracts.Generation;

namespace Serving.Runtime.Generation;

/// <summary>
/// The engine loop: the only code that runs forward passes, on one dedicated thread. Callers enqueue
/// <see cref="GenerationCommand"/>s; each iteration asks the <see cref="StepScheduler"/> for a step plan, applies its
/// admissions, preemptions and removals to the sequences, runs its rows as one batched forward pass, and streams each
/// token to its request. When a step fails, its rows run again one by one, and only a row that fails alone fails.
/// </summary>
public sealed class EngineWorker : BackgroundService
{
    private readonly ModelHost _host;
    private readonly ModelOptions _options;
    private BatchingOptions _batching;
    private readonly Speculation.DraftPlanner _drafts;
    private readonly TimeProvider _time;
    private readonly ILogger<EngineWorker> _logger;
    private readonly HostAdapterCache _hostCache;
    private readonly ConcurrentDictionary<RequestId, ActiveRequest> _requests = new();
    private volatile StepScheduler? _scheduler;
    private AdapterSlotBinder? _binder;
    private long _nextId;
    private volatile bool _running;
    private long _cancelled;
    private readonly Serving.Runtime.Observability.ServingMetrics _metrics;
    private readonly string _maxLora;
    private volatile string[] _adapterLabels = ["", ""];

    // Adapter reads run on the thread pool, shared by every request that waits on them: shutdown ends them, no one client.
    private readonly CancellationTokenSource _readsStopping = new();

    public EngineWorker(ModelHost host, IOptions<ModelOptions> options, IOptions<AdapterStore.AdapterStoreOptions> adapters,
        IOptions<BatchingOptions> batching, IOptions<Speculation.SpeculationOptions> speculation, TimeProvider time,
        Serving.Runtime.Observability.ServingMetrics metrics, ILogger<EngineWorker> logger)
    {
        _drafts = new Speculation.DraftPlanner(speculation.Value);
        _metrics = metrics;
        _maxLora = adapters.Value.MaxDeviceSlots.ToString(System.Globalization.CultureInfo.InvariantCulture);
        metrics.OnCollect(RefreshMetrics);
        _host = host;
        _options = options.Value;
        _batching = batching.Value;
        _time = time;
        _logger = logger;
        var a = adapters.Value;
        _hostCache = new HostAdapterCache(a.HostCacheBytes, ReadAdapter, time, elapsed => metrics.AdapterLoadSeconds.Record(elapsed.TotalSeconds, ServingMetrics.Tag("tier", "host")));
    }

    /// <summary>
    /// A tier reload through the store's lifecycle. Weights are cached and slotted under the version the request was
    /// pinned to, and that version seeds its prefix-cache keys; so a folder changed in place is never served under its
    /// old version (KV computed from the new bytes would be keyed, and reused, as the old version's). The store has
    /// already moved the registration to the new version; this read fails as unavailable and a retry pins the new one.
    /// </summary>
    private Serving.Contracts.Lora.LoraAdapterWeights ReadAdapter(AdapterStore.Registry.AdapterRecord record)
    {
        var (weights, version) = _host.Lifecycle.ReadWeights(record, _readsStopping.Token);
        if (version == record.Version)
            return weights;
        _logger.LogWarning("Adapter {Adapter}: its files changed in place (version {Old} → {New}); requests pinned to the old version fail, later ones are served the new one",
            record.Id, record.Version, version);
        throw new AdapterStoreException(AdapterStoreFailure.Unavailable, AdapterStoreSubject.Path,
            $"The adapter '{record.Id}' changed in place while this request was pinned to its version {record.Version}; it is now version {version}. Send the request again.");
    }

    public bool IsRunning => _running;

    /// <summary>Sequences in the running batch.</summary>
    internal int Running => _scheduler?.Running ?? 0;

    /// <summary>Requests queued for admission (new or preempted).</summary>
    internal int Waiting => _scheduler?.Waiting ?? 0;

    /// <summary>KV cache blocks held by sequences (the scheduler's allocator is their one owner).</summary>
    internal int UsedKvBlocks => _scheduler?.Kv.UsedBlocks ?? 0;

    /// <summary>Adapter slot pins held by running requests.</summary>
    internal int PinnedAdapterSlots => _binder?.Slots.TotalPins ?? 0;

    /// <summary>Requests whose engine state is still held (running, queued, or about to be cleaned up).</summary>
    internal int TrackedRequests => _requests.Count;

    internal long Preemptions => _scheduler?.Preemptions ?? 0;

    /// <summary>The adapter's parsed weights through the host-memory tier (shared single-flight read).</summary>
    internal Task<Serving.Contracts.Lora.LoraAdapterWeights> ReadAdapterAsync(AdapterStore.Registry.AdapterRecord record) => _hostCache.GetOrLoad(record);

    /// <summary>
    /// Readies a newly registered version before its first request: read into the host tier and, for a DoRA adapter, its
    /// norms taken on the thread pool (and kept on disk) so that no slot fill of it takes them. Faults as the read did.
    /// </summary>
    public Task WarmAsync(AdapterStore.Registry.AdapterRecord record) => _binder is { } binder ? binder.Warm(record) : _hostCache.GetOrLoad(record);

    /// <summary>The fastest tier holding <paramref name="record"/>'s version: device, host, disk, or source (remote only).</summary>
    public string TierOf(AdapterStore.Registry.AdapterRecord record)
    {
        var key = new AdapterVersionKey(record.Id, record.Version);
        if (_binder?.Slots.IsResident(key) == true)
            return "device";
        if (_hostCache.Holds(key))
            return "host";
        return _host.Sources.IsOnDisk(record) ? "disk" : "source";
    }

    /// <summary>Whether requests' priorities order admission and preemption (<c>Serving:Batching:SchedulingPolicy</c> is <c>Priority</c>).</summary>
    public bool SchedulesByPriority => _batching.SchedulingPolicy == SchedulingPolicy.Priority;

    /// <summary>Requests the engine dropped because their caller went away.</summary>
    internal long Cancelled => Interlocked.Read(ref _cancelled);

    /// <summary>
    /// Queues a command, or says why not (the caller answers 429 or 503). Throws <see cref="ArgumentException"/> for a
    /// request that can never run (bad sampling parameters, empty prompt).
    /// </summary>
    internal EnqueueOutcome TryEnqueue(GenerationCommand command)
    {
        if (_scheduler is not StepScheduler scheduler || !_running)
            return EnqueueOutcome.Closed;
        var model = _host.Model;
        Engine.Constraints.TokenConstraint? constraint;
        try
        {
            constraint = command.Sampling.Constraint is { } c                                      // cached since the request stage
                ? model.Constraints.Compile(c, Hosting.ServedModel.ConstraintScope(command.Tenant, command.CacheSalt)) : null;
        }
        catch (Engine.Constraints.ConstraintException ex)
        {
            throw new ArgumentException(ex.Message, ex);
        }

        var state = new SequenceState(command.PromptTokens, command.Sampling, model.Tokenizer, model.EosTokenIds, constraint: constraint);
        var id = new RequestId(Interlocked.Increment(ref _nextId));
        Batching.PrefixCaching.PrefixCacheSeed? seed = null;
        Batching.PrefixCaching.PrefixBlockKey[]? keys = null;
        // A request that scores its prompt, or pools every position's state, computes its prompt whole.
        if (_batching.PrefixCaching && !command.Sampling.NeedsEveryPromptPosition)
            (seed, keys) = PrefixCacheKeys.For(command, _host.ModelId, _batching.KvBlockSize);
        var drafts = _drafts.Start(command.Tenant, command.CacheSalt, command.PredictionTokens);
        var scheduled = new ScheduledRequest(id, command.Tenant, command.Adapters.Mix, state.TotalTokens, command.Deadline, command.Aborted, keys, command.Priority);
        _requests[id] = new ActiveRequest(command, state, scheduled, seed) { Drafts = drafts };
        var outcome = scheduler.TryEnqueue(scheduled);
        if (outcome != EnqueueOutcome.Accepted)
            _requests.TryRemove(id, out _);
        return outcome;
    }

    /// <summary>
    /// Builds the scheduler and starts accepting before the host's start returns. Since .NET 10 a
    /// <see cref="BackgroundService"/> runs all of <see cref="ExecuteAsync"/> on the thread pool, so doing this there let a
    /// request that came right after start-up (a loaded machine, an in-process client) find the engine "not running".
    /// </summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        var model = _host.Model;
        _binder = new AdapterSlotBinder(_host, _hostCache, id => _requests[id].Command.Adapters, _metrics);
        _metrics.Vllm.ModelName = _host.ModelId;
        if (model.Config.BidirectionalAttention)
            _batching = _batching.ForBidirectionalAttention();
        _scheduler = new StepScheduler(_batching, _options.MaxSequences, Math.Min(_options.MaxContext, model.Model.MaxPositions), _binder, _time,
            KvCacheGroups.For(model.Config, _batching.HybridKvCache));
        _logger.LogInformation("Speculative decoding: {Speculation}", _drafts.Description);
        // Accepting from here on: requests queued before the loop thread is scheduled simply wait in the scheduler.
        _running = true;
        return base.StartAsync(cancellationToken);
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        _readsStopping.Cancel();
        return base.StopAsync(cancellationToken);
    }

    // Not started with stoppingToken: a loop that never ran would never close the scheduler and end what it queued.
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Loop(stoppingToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Loop(CancellationToken stop)
    {
        var scheduler = _scheduler!;
        var model = _host.Model.Model;
        using var cache = model.CreateKvCache(scheduler.MaxSequences, scheduler.MaxContext, scheduler.Kv.BlockSize, scheduler.Kv.TotalBlocks, scheduler.KvGroups);
        KvCacheReport.Log(_logger, cache, scheduler, model.Config.NumLayers);
        _metrics.KvCacheBytes = cache.TotalBytes;
        var stepper = new GenerationStepper(model, cache);
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var plan = scheduler.PlanStep();
                Apply(plan);
                PublishAdapters(scheduler);
                if (plan.IsEmpty)
                {
                    plan.Wake.Wait(stop);
                    continue;
                }

                RunStep(plan, scheduler, stepper);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            _running = false;
            foreach (var id in scheduler.Close())
                if (_requests.TryRemove(id, out var r))
                    r.Command.Output.Complete(new OperationCanceledException("the server is shutting down"));
        }
    }

    private void Apply(StepPlan plan)
    {
        foreach (var ended in plan.Ended)
        {
            if (!_requests.TryRemove(ended.Id, out var r))
                continue;
            if (ended.Cause == EndCause.Cancelled)
                Interlocked.Increment(ref _cancelled);
            r.Command.Output.Complete(ended.Cause == EndCause.Cancelled ? null : ended.Error);
        }

        foreach (var started in plan.Started)
        {
            var r = _requests[started.Id];
            r.State.Adapters = started.Slots;
            if (!started.Resumed)
                r.Command.Output.Admitted(started.CachedTokens);
        }
    }

    private void RunStep(StepPlan plan, StepScheduler scheduler, GenerationStepper stepper)
    {
        var rows = plan.Rows.Select(r => _requests[r.Id]).ToList();
        var stepRows = plan.Rows.Select((r, i) => new StepRow(rows[i].State, r.StartPosition, r.SequenceTokens, new KvBlockTable(r.Blocks),
            r.DraftTokens > 0 ? rows[i].Drafts!.Planned(r.DraftTokens) : null)).ToList();
        IReadOnlyList<IReadOnlyList<TokenEvent>> events;
        var failed = new Exception?[rows.Count];
        Engine.Generation.StepTimings? parts = null;         // only for a step that ran as one batch
        long started = _time.GetTimestamp();
        try
        {
            events = stepper.Step(stepRows);
            parts = stepper.LastTimings;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException && rows.Count > 1)
        {
            // One row's fault must not cost the others their work: a failed step leaves every sequence as it was, so each
            // row runs again alone, and only a row that fails alone fails.
            _logger.LogWarning(ex, "Forward step of {Count} rows failed; running each row alone", rows.Count);
            events = RunRowsAlone(plan, stepRows, stepper, failed);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogRowFailure(ex, plan.Rows[0].Id);
            scheduler.FailStep(plan);
            Finish(plan.Rows[0].Id, rows[0], ex);
            return;
        }

        _metrics.RecordEngineStep(plan.Rows.Sum(r => r.SequenceTokens), rows.Count, _time.GetElapsedTime(started), parts);
        var results = new RowResult[rows.Count];
        for (int i = 0; i < rows.Count; i++)
        {
            var emitted = events[i];
            int drafts = plan.Rows[i].DraftTokens, accepted = emitted.Count == 0 ? 0 : Math.Min(drafts, emitted.Count - 1);
            if (drafts > 0 && failed[i] is null)
            {
                rows[i].Drafts!.Record(drafts, accepted);
                _metrics.Vllm.Drafted(drafts, accepted);
            }

            foreach (var e in emitted)
                rows[i].Command.Output.Write(e.Finish != FinishReason.None && rows[i].Drafts?.Prediction is { } prediction ? e with { Prediction = prediction } : e);
            if (emitted.Count > 0)
                rows[i].ExtendBlockKeys(_batching.KvBlockSize);
            results[i] = new RowResult(emitted.Count > 0, rows[i].State.IsFinished || failed[i] is not null, failed[i] is not null, accepted);
        }

        scheduler.CompleteStep(plan, results);
        for (int i = 0; i < rows.Count; i++)
        {
            if (rows[i].State.IsFinished && failed[i] is null)
                _drafts.Finished(rows[i].Command.Tenant, rows[i].Command.CacheSalt, rows[i].State);
            if (rows[i].State.IsFinished || failed[i] is not null)
                Finish(plan.Rows[i].Id, rows[i], failed[i]);
        }

        _drafts.Propose(scheduler.RunningRequests, id => _requests.TryGetValue(id, out var r) && r.Drafts is { } d ? (d, r.State) : null);
    }

    /// <summary>The rows of a failed step, each as a forward pass of its own; a row that fails alone gets its error in <paramref name="failed"/>.</summary>
    private IReadOnlyList<IReadOnlyList<TokenEvent>> RunRowsAlone(StepPlan plan, List<StepRow> rows, GenerationStepper stepper, Exception?[] failed)
    {
        var events = new IReadOnlyList<TokenEvent>[rows.Count];
        for (int i = 0; i < rows.Count; i++)
        {
            try
            {
                events[i] = stepper.Step([rows[i]])[0];
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                LogRowFailure(ex, plan.Rows[i].Id);
                failed[i] = ex;
                events[i] = [];
            }
        }

        return events;
    }

    /// <summary>
    /// A request failed alone: a server fault, unless its own output constraint outgrew its automaton's bounds while
    /// generating (the tenant's grammar), which is the request's doing and answered as such (<see cref="GenerationClient"/>).
    /// </summary>
    private void LogRowFailure(Exception ex, RequestId id)
    {
        if (Engine.Constraints.ConstraintException.Within(ex) is { } constraint)
            _logger.LogWarning("Request {Id} ended: its output constraint cannot continue ({Problem})", id, constraint.Message);
        else
            _logger.LogError(ex, "Forward step of {Id} failed alone; failing the request", id);
    }

    /// <summary>Adapter ids of running and waiting requests, comma-separated, for <c>vllm:lora_requests_info</c> (engine loop only).</summary>
    private void PublishAdapters(StepScheduler scheduler)
    {
        static string Ids(IEnumerable<ScheduledRequest> requests) =>
            string.Join(",", requests.SelectMany(r => r.Adapters.Entries).Select(e => e.Id.Value).Distinct().Order(StringComparer.Ordinal));
        string running = Ids(scheduler.RunningRequests), waiting = Ids(scheduler.WaitingRequests);
        var current = _adapterLabels;
        if (current[0] != running || current[1] != waiting)
            _adapterLabels = [running, waiting];
        if (scheduler.RunningRequests.Count + scheduler.WaitingRequests.Count > 0 || _adapterActivity.Count > 0)
            _adapterActivity = Generation.AdapterActivity.Of(scheduler.RunningRequests, scheduler.WaitingRequests, _binder?.Slots);
    }

    private volatile IReadOnlyDictionary<Serving.Contracts.AdapterId, AdapterActivity> _adapterActivity =
        new Dictionary<Serving.Contracts.AdapterId, AdapterActivity>();

    /// <summary>Running and waiting requests and device-slot pins per adapter, as of the last step (engine loop writes, anyone reads).</summary>
    public IReadOnlyDictionary<Serving.Contracts.AdapterId, AdapterActivity> AdapterActivity => _adapterActivity;

    private void RefreshMetrics()
    {
        _metrics.Waiting = Waiting;
        _metrics.Running = Running;
        var kv = _scheduler?.Kv;
        _metrics.KvUsage = kv is null ? 0 : kv.UsedBlocks / (double)kv.TotalBlocks;
        if (kv is not null)
        {
            _metrics.CacheConfig = (kv.BlockSize, kv.TotalBlocks);
            _metrics.CacheDtype = _host.Model.Model.Dtype.ToString().ToLowerInvariant();
        }

        _metrics.ModelConfig = (_host.Model.Model.Dtype.ToString().ToLowerInvariant(), _host.QuantizationName, _host.Model.Model.Weights.TotalBytes);

        _metrics.Preemptions = Preemptions;
        _metrics.PrefixCacheQueries = _scheduler?.PrefixCacheQueries ?? 0;
        _metrics.PrefixCacheHits = _scheduler?.PrefixCacheHits ?? 0;
        _metrics.PrefixCacheBlocks = kv?.CachedBlocks ?? 0;
        static System.Diagnostics.Metrics.Measurement<long> Count(long value, string tier, string result) =>
            new(value, ServingMetrics.Tag("tier", tier), ServingMetrics.Tag("result", result));
        var counts = new List<System.Diagnostics.Metrics.Measurement<long>>
        {
            Count(_hostCache.Hits, "host", "hit"), Count(_hostCache.Misses, "host", "miss"), Count(_hostCache.Evictions, "host", "eviction"),
        };
        if (_binder is AdapterSlotBinder binder)
            counts.AddRange([Count(binder.Slots.Hits, "device", "hit"), Count(binder.Slots.Misses, "device", "miss"), Count(binder.Slots.Evictions, "device", "eviction")]);
        _metrics.TierCounts = counts;
        var labels = _adapterLabels;
        _metrics.LoraInfo = (labels[0], labels[1], _maxLora);
        if (_host.IsLoaded && _host.Sources.S3BreakerState is Polly.CircuitBreaker.CircuitState breaker)
            _metrics.BreakerStates = Enum.GetValues<Polly.CircuitBreaker.CircuitState>()
                .Select(state => new System.Diagnostics.Metrics.Measurement<double>(state == breaker ? 1 : 0, ServingMetrics.Tag("source", "s3"),
                    ServingMetrics.Tag("state", state.ToString().ToLowerInvariant())))
                .ToList();
    }

    public override void Dispose()
    {
        base.Dispose();
        // A DoRA preparation still reading the base weights must finish before the model host disposes them.
        _binder?.WaitForPreparations(TimeSpan.FromSeconds(30));
        _hostCache.Dispose();
        _readsStopping.Dispose();
    }

    private void Finish(RequestId id, ActiveRequest r, Exception? error)
    {
        _requests.TryRemove(id, out _);
        r.Command.Output.Complete(error);
    }
}
