using Serving.LoadTests.Planning;
using Serving.LoadTests.Reporting;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.ScaleOut;

/// <summary>
/// Discrete-event simulation of N replicas behind a gateway: Poisson arrivals, Zipf adapter popularity, each request
/// routed at arrival by the picker and served by its replica's step loop (see <see cref="SimulatedReplica"/>). The
/// same seed gives the same arrivals for every picker, so policies are compared on identical traffic.
/// </summary>
internal static class ScaleOutSimulation
{
    public static ScaleOutResult Run(ScaleOutOptions options, Func<LoadRandom, IReplicaPicker> pickerFactory)
    {
        var traffic = new LoadRandom(options.Seed);
        var picker = pickerFactory(new LoadRandom(options.Seed ^ 0x5DEECE66DUL));
        var popularity = new ZipfDistribution(options.Adapters, options.ZipfS);
        var replicas = Enumerable.Range(0, options.Replicas).Select(i => new SimulatedReplica(i, options)).ToArray();
        var requests = new List<SimulatedRequest>(options.Requests);
        double nextArrival = traffic.NextExponential(1000 / options.RatePerSecond);
        int finished = 0;
        double now = 0;
        while (finished < options.Requests)
        {
            var stepping = replicas.MinBy(r => r.StepEndsAtMs)!;
            if (requests.Count < options.Requests && nextArrival <= stepping.StepEndsAtMs)
            {
                now = nextArrival;
                var request = new SimulatedRequest(popularity.Sample(traffic), now, options.OutputTokens);
                requests.Add(request);
                picker.Pick(replicas, request.Adapter).Enqueue(request, now);
                nextArrival = now + traffic.NextExponential(1000 / options.RatePerSecond);
            }
            else if (!double.IsPositiveInfinity(stepping.StepEndsAtMs))
            {
                now = stepping.StepEndsAtMs;
                finished += stepping.EndStep().Count;
            }
            else
            {
                throw new InvalidOperationException("simulation stalled: no arrivals left and every replica idle with requests unfinished");
            }
        }

        return new ScaleOutResult(
            picker.Name,
            requests.Count,
            replicas.Sum(r => r.AdapterLoads),
            now / 1000,
            (double)options.OutputTokens * requests.Count / (now / 1000),
            Percentiles.Of(requests.Select(r => r.FirstTokenMs - r.ArrivalMs)),
            Percentiles.Of(requests.Select(r => r.FinishedMs - r.ArrivalMs)),
            [.. replicas.Select(r => r.AdapterLoads)]);
    }
}
