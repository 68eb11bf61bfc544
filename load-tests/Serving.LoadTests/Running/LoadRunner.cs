using System.Collections.Concurrent;
using System.Diagnostics;
using Serving.LoadTests.Clients;
using Serving.LoadTests.Planning;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Running;

/// <summary>
/// Drives one client with a scenario's arrival process until the scenario's bound. Closed loop: C workers, each
/// sending its next request when the previous one ends. Open loop: requests start at their planned Poisson offsets
/// whether or not earlier ones have ended; past <c>max_in_flight</c> a request is counted as "client_overflow"
/// (so an overloaded server cannot make the generator itself grow without bound). Conversations: each closed-loop
/// worker is one user whose next turn is planned from its answers (<see cref="ConversationPlanner"/>).
/// </summary>
internal sealed class LoadRunner(Scenario scenario, ILoadClient client, RequestPlanner planner, LiveCounters counters)
{
    private readonly object _planLock = new();
    private int _issued;

    public async Task<LoadRun> RunAsync(CancellationToken cancellationToken)
    {
        var outcomes = new ConcurrentBag<RequestOutcome>();
        var clock = Stopwatch.StartNew();
        TimeSpan? duration = scenario.DurationSeconds is { } s ? TimeSpan.FromSeconds(s) : null;
        if (scenario.Conversations is not null)
        {
            await Task.WhenAll(Enumerable.Range(0, scenario.Arrival.Concurrency).Select(worker => Task.Run(async () =>
            {
                var conversation = new ConversationPlanner(scenario, planner.BaseModel, planner.Adapters, worker);
                while (!cancellationToken.IsCancellationRequested && TakeIndex(clock, duration) is { } index)
                {
                    var outcome = await SendAsync(conversation.Next(index), clock, cancellationToken);
                    conversation.Record(outcome);
                    outcomes.Add(outcome);
                }
            }, CancellationToken.None)));
        }
        else if (scenario.Arrival.Mode == "closed")
        {
            await Task.WhenAll(Enumerable.Range(0, scenario.Arrival.Concurrency).Select(_ => Task.Run(async () =>
            {
                while (!cancellationToken.IsCancellationRequested && TakeNext(clock, duration) is { } request)
                    outcomes.Add(await SendAsync(request, clock, cancellationToken));
            }, CancellationToken.None)));
        }
        else
        {
            var running = new List<Task>();
            int inFlight = 0;
            while (!cancellationToken.IsCancellationRequested && TakeNext(clock, duration) is { } request)
            {
                var wait = request.ArrivalOffset - clock.Elapsed;
                if (duration is { } d && request.ArrivalOffset >= d)
                    break;
                if (wait > TimeSpan.Zero)
                {
                    try
                    {
                        await Task.Delay(wait, cancellationToken);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }

                if (Volatile.Read(ref inFlight) >= scenario.Arrival.MaxInFlight)
                {
                    counters.OnRejectedLocally();
                    outcomes.Add(new RequestOutcome(request, "client_overflow", clock.Elapsed.TotalSeconds, double.NaN, double.NaN, 0, 0,
                        $"more than {scenario.Arrival.MaxInFlight} requests in flight"));
                    continue;
                }

                Interlocked.Increment(ref inFlight);
                running.Add(Task.Run(async () =>
                {
                    outcomes.Add(await SendAsync(request, clock, cancellationToken));
                    Interlocked.Decrement(ref inFlight);
                }, CancellationToken.None));
                running.RemoveAll(t => t.IsCompleted);
            }

            await Task.WhenAll(running);
        }

        return new LoadRun([.. outcomes.OrderBy(o => o.Request.Index)], clock.Elapsed.TotalSeconds);
    }

    private PlannedRequest? TakeNext(Stopwatch clock, TimeSpan? duration)
    {
        lock (_planLock)
            return TakeIndex(clock, duration) is null ? null : planner.Next();
    }

    /// <summary>The next request's index, or null once the scenario's bound is reached.</summary>
    private int? TakeIndex(Stopwatch clock, TimeSpan? duration)
    {
        lock (_planLock)
        {
            if (scenario.Requests is { } limit && _issued >= limit)
                return null;
            if (duration is { } d && clock.Elapsed >= d)
                return null;
            return _issued++;
        }
    }

    private async Task<RequestOutcome> SendAsync(PlannedRequest request, Stopwatch clock, CancellationToken cancellationToken)
    {
        counters.OnStart();
        var outcome = await client.SendAsync(request, clock.Elapsed.TotalSeconds, cancellationToken);
        counters.OnEnd(outcome.Succeeded, outcome.OutputTokens);
        return outcome;
    }
}
