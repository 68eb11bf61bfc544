using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Serving.AdapterStore.Tiers;
using Serving.Engine.Generation;
using Serving.Server.Hosting;

namespace Serving.Server.Generation;

/// <summary>
/// The engine loop: the only code that runs forward passes. Callers write <see cref="GenerationCommand"/>s; each
/// iteration admits waiting commands while KV rows are free, advances every running sequence by one token in a single
/// batched step, and streams each token to its request. A failing step fails only the requests in it.
/// (The adapter-aware scheduler replaces the admission policy here; see the continuous-batching issue.)
/// </summary>
internal sealed class EngineWorker : BackgroundService
{
    private readonly Channel<GenerationCommand> _commands;
    private readonly ModelHost _host;
    private readonly ModelOptions _options;
    private readonly ILogger<EngineWorker> _logger;

    private readonly HostAdapterCache _hostCache;

    private readonly Batching.AdmissionPolicy _policy;
    private readonly int _maxPrefillTokens;

    public EngineWorker(ModelHost host, IOptions<ModelOptions> options, IOptions<EngineOptions> engine, IOptions<AdapterStore.AdapterStoreOptions> adapters,
        IOptions<Batching.BatchingOptions> batching, ILogger<EngineWorker> logger)
    {
        _host = host;
        _policy = batching.Value.Policy;
        _maxPrefillTokens = batching.Value.MaxPrefillTokensPerStep;
        var a = adapters.Value;
        _hostCache = new HostAdapterCache(a.HostCacheBytes,
            record => AdapterStore.Peft.PeftAdapterReader.Read(host.Sources.EnsureLocal(record), record.Id.Value, host.Model.Config, a.MaxRank, a.MaxAdapterBytes));
        _options = options.Value;
        _logger = logger;
        _commands = Channel.CreateBounded<GenerationCommand>(new BoundedChannelOptions(engine.Value.MaxQueuedRequests)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    public bool IsRunning { get; private set; }
    public int Running { get; private set; }
    public int Waiting => _commands.Reader.Count + _waitingCount;

    private volatile int _waitingCount;
    private volatile int _freeKvSlots = -1;
    private volatile int _pinnedAdapterSlots;

    /// <summary>KV cache rows not held by any sequence (after the last step); -1 before the loop starts.</summary>
    public int FreeKvSlots => _freeKvSlots;

    /// <summary>Sum of adapter slot pins held by running requests (after the last step).</summary>
    public int PinnedAdapterSlots => _pinnedAdapterSlots;

    /// <summary>Queues a command; false when the queue is full (the caller answers 429).</summary>
    public bool TryEnqueue(GenerationCommand command) => _commands.Writer.TryWrite(command);

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Accepting from here on: commands queued before the loop thread is scheduled simply wait in the channel.
        IsRunning = true;
        return Task.Factory.StartNew(() => Loop(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private void Loop(CancellationToken stop)
    {
        var model = _host.Model;
        using var cache = model.Model.CreateKvCache(_options.MaxSequences, _options.MaxContext);
        var stepper = new GenerationStepper(model.Model, cache, _maxPrefillTokens);
        var binder = new AdapterSlotBinder(_host, _hostCache);
        var active = new List<RunningRequest>();
        var waiting = new List<GenerationCommand>();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                if (active.Count == 0 && waiting.Count == 0 && !_commands.Reader.WaitToReadAsync(stop).AsTask().GetAwaiter().GetResult())
                    return;
                // Take only what admission can consider; the rest stays in the bounded channel, which is the queue
                // whose limit turns into 429 for new requests.
                while (waiting.Count < 2 * cache.MaxSequences && _commands.Reader.TryRead(out var command))
                    waiting.Add(command);
                var loads = AdmitWaiting(waiting, active, cache.MaxSequences, model, binder, _policy);
                _waitingCount = waiting.Count;
                DropAborted(active, stepper, binder);
                bool stepped = active.Count > 0;
                if (stepped)
                    RunStep(active, stepper, binder);
                Running = active.Count;
                _freeKvSlots = cache.FreeSlots;
                _pinnedAdapterSlots = binder.Slots.TotalPins;
                if (!stepped && loads.Count > 0)
                {
                    // Nothing could run: every waiting request needs an adapter still being read. Sleep until a read
                    // finishes or a new request arrives.
                    Task.WaitAny([_commands.Reader.WaitToReadAsync(stop).AsTask(), .. loads], stop);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            IsRunning = false;
            _commands.Writer.TryComplete();
            foreach (var r in active)
            {
                stepper.Release(r.State);
                r.Command.Output.TryComplete(new OperationCanceledException("the server is shutting down"));
            }

            foreach (var queued in waiting)
                queued.Output.TryComplete(new OperationCanceledException("the server is shutting down"));
            while (_commands.Reader.TryRead(out var queued))
                queued.Output.TryComplete(new OperationCanceledException("the server is shutting down"));
        }
    }

    /// <summary>A running request: its command, its sequence, and the adapter slots it pins.</summary>
    private sealed record RunningRequest(GenerationCommand Command, SequenceState State, IReadOnlyList<(int Slot, float Weight)> Slots);

    /// <summary>
    /// Admits waiting requests in arrival order while KV rows are free; a request whose adapter is still being read or
    /// has no free slot stays queued without holding back the ones behind it. Returns the adapter reads in flight.
    /// </summary>
    private static List<Task> AdmitWaiting(List<GenerationCommand> waiting, List<RunningRequest> active, int maxSequences,
        Engine.Model.LoadedModel model, AdapterSlotBinder binder, Batching.AdmissionPolicy policy)
    {
        var loads = new List<Task>();
        var candidates = Batching.AdmissionPlanner.Candidates(policy, active.Select(a => a.Command.Adapters).ToList(), waiting.Select(w => w.Adapters).ToList());
        var admitted = new HashSet<int>();
        foreach (int i in candidates)
        {
            if (active.Count >= maxSequences)
                break;
            if (Admit(waiting[i], model, binder, active, out var pending))
                admitted.Add(i);
            else if (pending is not null)
                loads.Add(pending);
        }

        // Requests cancelled while they wait leave the queue now, whatever the policy.
        for (int i = 0; i < waiting.Count; i++)
            if (!admitted.Contains(i) && waiting[i].Aborted.IsCancellationRequested)
            {
                waiting[i].Output.TryComplete();
                admitted.Add(i);
            }

        for (int i = waiting.Count - 1; i >= 0; i--)
            if (admitted.Contains(i))
                waiting.RemoveAt(i);
        return loads;
    }

    /// <summary>Starts <paramref name="command"/> (or fails it); false when it must keep waiting.</summary>
    private static bool Admit(GenerationCommand command, Engine.Model.LoadedModel model, AdapterSlotBinder binder, List<RunningRequest> active, out Task? pendingLoad)
    {
        pendingLoad = null;
        if (command.Aborted.IsCancellationRequested)
        {
            command.Output.TryComplete();
            return true;
        }

        BindResult bind;
        try
        {
            bind = binder.TryBind(command.Adapters);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Whatever went wrong with this request's adapters (invalid, missing, source down) fails only this request.
            command.Output.TryComplete(ex);
            return true;
        }

        pendingLoad = bind.PendingLoad;
        if (bind.Slots is not IReadOnlyList<(int Slot, float Weight)> slots)
            return false;
        try
        {
            active.Add(new RunningRequest(command, new SequenceState(command.PromptTokens, command.Sampling, model.Tokenizer, model.EosTokenIds, slots), slots));
        }
        catch (ArgumentException ex)
        {
            binder.Release(slots);
            command.Output.TryComplete(ex);
        }

        return true;
    }

    private static void Finish(RunningRequest r, GenerationStepper stepper, AdapterSlotBinder binder, Exception? error)
    {
        stepper.Release(r.State);
        binder.Release(r.Slots);
        r.Command.Output.TryComplete(error);
    }

    private static void DropAborted(List<RunningRequest> active, GenerationStepper stepper, AdapterSlotBinder binder)
    {
        for (int i = active.Count - 1; i >= 0; i--)
        {
            if (!active[i].Command.Aborted.IsCancellationRequested)
                continue;
            Finish(active[i], stepper, binder, null);
            active.RemoveAt(i);
        }
    }

    private void RunStep(List<RunningRequest> active, GenerationStepper stepper, AdapterSlotBinder binder)
    {
        IReadOnlyList<TokenEvent?> events;
        try
        {
            events = stepper.Step(active.Select(a => a.State).ToList());
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _logger.LogError(ex, "Forward step failed; failing the {Count} requests in it", active.Count);
            foreach (var r in active)
                Finish(r, stepper, binder, ex);
            active.Clear();
            return;
        }

        for (int i = active.Count - 1; i >= 0; i--)
        {
            var r = active[i];
            if (events[i] is TokenEvent e)
                r.Command.Output.TryWrite(new GenerationUpdate(e, null));
            if (r.State.IsFinished)
            {
                Finish(r, stepper, binder, null);
                active.RemoveAt(i);
            }
        }
    }
}
