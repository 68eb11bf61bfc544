namespace Serving.LoadTests.Scenarios;

/// <summary>
/// How requests arrive: <c>closed</c> keeps <see cref="Concurrency"/> requests in flight (a new one as each ends);
/// <c>poisson</c> starts requests at exponentially spaced times with mean rate <see cref="Rate"/> per second whatever
/// the server's speed (open loop), so overload shows as queueing and rejections rather than as a slower client.
/// </summary>
internal sealed record ArrivalSpec
{
    public string Mode { get; init; } = "closed";

    public int Concurrency { get; init; } = 8;

    public double Rate { get; init; } = 4;

    /// <summary>Open loop only: requests in flight beyond this are not started but counted as "client_overflow".</summary>
    public int MaxInFlight { get; init; } = 4096;

    public IEnumerable<string> Validate()
    {
        if (Mode is not ("closed" or "poisson"))
            yield return $"arrival.mode: '{Mode}' is not 'closed' or 'poisson'";
        if (Mode == "closed" && Concurrency is < 1 or > 100_000)
            yield return $"arrival.concurrency: {Concurrency} is not in [1, 100000]";
        if (Mode == "poisson" && !(Rate > 0 && Rate <= 1_000_000))
            yield return $"arrival.rate: {Rate} is not in (0, 1000000]";
        if (MaxInFlight < 1)
            yield return $"arrival.max_in_flight: {MaxInFlight} must be at least 1";
    }
}
