using System.Threading.Channels;
using Microsoft.Extensions.Options;
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

    public EngineWorker(ModelHost host, IOptions<ModelOptions> options, IOptions<EngineOptions> engine, ILogger<EngineWorker> logger)
    {
        _host = host;
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
    public int Waiting => _commands.Reader.Count;

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
        var stepper = new GenerationStepper(model.Model, cache);
        var active = new List<(GenerationCommand Command, SequenceState State)>();
        try
        {
            while (!stop.IsCancellationRequested)
            {
                if (active.Count == 0 && !_commands.Reader.WaitToReadAsync(stop).AsTask().GetAwaiter().GetResult())
                    return;
                while (active.Count < cache.MaxSequences && _commands.Reader.TryRead(out var command))
                    Admit(command, model, active);
                DropAborted(active, stepper);
                Running = active.Count;
                if (active.Count > 0)
                    RunStep(active, stepper);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            IsRunning = false;
            _commands.Writer.TryComplete();
            foreach (var (command, state) in active)
            {
                stepper.Release(state);
                command.Output.TryComplete(new OperationCanceledException("the server is shutting down"));
            }

            while (_commands.Reader.TryRead(out var queued))
                queued.Output.TryComplete(new OperationCanceledException("the server is shutting down"));
        }
    }

    private static void Admit(GenerationCommand command, Engine.Model.LoadedModel model, List<(GenerationCommand, SequenceState)> active)
    {
        if (command.Aborted.IsCancellationRequested)
        {
            command.Output.TryComplete();
            return;
        }

        try
        {
            active.Add((command, new SequenceState(command.PromptTokens, command.Sampling, model.Tokenizer, model.EosTokenIds)));
        }
        catch (ArgumentException ex)
        {
            command.Output.TryComplete(ex);
        }
    }

    private static void DropAborted(List<(GenerationCommand Command, SequenceState State)> active, GenerationStepper stepper)
    {
        for (int i = active.Count - 1; i >= 0; i--)
        {
            if (!active[i].Command.Aborted.IsCancellationRequested)
                continue;
            stepper.Release(active[i].State);
            active[i].Command.Output.TryComplete();
            active.RemoveAt(i);
        }
    }

    private void RunStep(List<(GenerationCommand Command, SequenceState State)> active, GenerationStepper stepper)
    {
        IReadOnlyList<TokenEvent> events;
        try
        {
            events = stepper.Step(active.Select(a => a.State).ToList());
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _logger.LogError(ex, "Forward step failed; failing the {Count} requests in it", active.Count);
            foreach (var (command, state) in active)
            {
                stepper.Release(state);
                command.Output.TryComplete(ex);
            }

            active.Clear();
            return;
        }

        for (int i = active.Count - 1; i >= 0; i--)
        {
            var (command, state) = active[i];
            command.Output.TryWrite(new GenerationUpdate(events[i], null));
            if (state.IsFinished)
            {
                command.Output.TryComplete();
                active.RemoveAt(i);
            }
        }
    }
}
