namespace Serving.Batching.Scheduling;

/// <summary>When requests must leave: cancelled by their callers, or past their deadlines.</summary>
internal static class RequestDeadlines
{
    /// <summary>The requests of <paramref name="requests"/> that leave now, and why (a snapshot: the caller may end them as it goes).</summary>
    public static List<(ScheduledRequest Request, EndCause Cause)> Leaving(IEnumerable<ScheduledRequest> requests, DateTimeOffset now)
    {
        var leaving = new List<(ScheduledRequest, EndCause)>();
        foreach (var r in requests)
        {
            if (r.Aborted.IsCancellationRequested)
                leaving.Add((r, EndCause.Cancelled));
            else if (r.Deadline <= now)
                leaving.Add((r, EndCause.TimedOut));
        }

        return leaving;
    }

    /// <summary>The earliest deadline among <paramref name="requests"/>, or null.</summary>
    public static DateTimeOffset? Next(IEnumerable<ScheduledRequest> requests)
    {
        DateTimeOffset? next = null;
        foreach (var r in requests)
            if (r.Deadline < (next ?? DateTimeOffset.MaxValue))
                next = r.Deadline;
        return next;
    }
}
