namespace Serving.Batching.Scheduling;

/// <summary>
/// The requests waiting for admission, in the scheduling policy's order, and what they hold back: their number and
/// prompt tokens, the one record of both. A request is counted from the moment it is accepted on any thread
/// (<see cref="TryReserve"/>), before the engine loop places it (<see cref="Insert"/>); everything else runs on the loop.
/// </summary>
internal sealed class WaitingQueue(IComparer<ScheduledRequest> order)
{
    private readonly List<ScheduledRequest> _items = [];
    private long _requests, _tokens;

    /// <summary>Requests accepted and not running (thread-safe).</summary>
    public int Count => (int)Interlocked.Read(ref _requests);

    /// <summary>Their tokens: prompts, and for a preempted request everything it must recompute (thread-safe).</summary>
    public long Tokens => Interlocked.Read(ref _tokens);

    /// <summary>The placed requests in admission order (engine loop only).</summary>
    public IReadOnlyList<ScheduledRequest> Items => _items;

    /// <summary>Counts a new request of <paramref name="tokens"/> tokens unless that passes a limit (any thread).</summary>
    public EnqueueOutcome TryReserve(int tokens, long maxRequests, long maxTokens)
    {
        if (Interlocked.Increment(ref _requests) > maxRequests)
        {
            Interlocked.Decrement(ref _requests);
            return EnqueueOutcome.TooManyRequests;
        }

        if (Interlocked.Add(ref _tokens, tokens) > maxTokens)
        {
            Interlocked.Add(ref _tokens, -tokens);
            Interlocked.Decrement(ref _requests);
            return EnqueueOutcome.TooManyTokens;
        }

        return EnqueueOutcome.Accepted;
    }

    /// <summary>Places a reserved request at its place in the order.</summary>
    public void Insert(ScheduledRequest r)
    {
        int at = _items.BinarySearch(r, order);
        _items.Insert(at < 0 ? ~at : at, r);
    }

    /// <summary>Counts and places a request that left the running batch (preempted), with every token it must recompute.</summary>
    public void Requeue(ScheduledRequest r)
    {
        Interlocked.Increment(ref _requests);
        Interlocked.Add(ref _tokens, r.Length);
        Insert(r);
    }

    /// <summary>Takes a placed request out (admitted or ended).</summary>
    public void Remove(ScheduledRequest r)
    {
        _items.Remove(r);
        Interlocked.Decrement(ref _requests);
        Interlocked.Add(ref _tokens, -r.Length);
    }
}
