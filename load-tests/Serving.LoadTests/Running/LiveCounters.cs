namespace Serving.LoadTests.Running;

/// <summary>Counters the runner bumps and the terminal display reads while a run is in progress.</summary>
internal sealed class LiveCounters
{
    private long _started, _completed, _failed, _tokens, _inFlight;

    public long Started => Interlocked.Read(ref _started);
    public long Completed => Interlocked.Read(ref _completed);
    public long Failed => Interlocked.Read(ref _failed);
    public long Tokens => Interlocked.Read(ref _tokens);
    public long InFlight => Interlocked.Read(ref _inFlight);

    public void OnStart()
    {
        Interlocked.Increment(ref _started);
        Interlocked.Increment(ref _inFlight);
    }

    public void OnEnd(bool succeeded, int tokens)
    {
        Interlocked.Decrement(ref _inFlight);
        Interlocked.Increment(ref succeeded ? ref _completed : ref _failed);
        Interlocked.Add(ref _tokens, tokens);
    }

    public void OnRejectedLocally()
    {
        Interlocked.Increment(ref _started);
        Interlocked.Increment(ref _failed);
    }
}
