using Serving.LoadTests.Reporting;

namespace Serving.LoadTests.ScaleOut;

/// <summary>One routing policy's figures over the simulated fleet.</summary>
internal sealed record ScaleOutResult(
    string Policy,
    int Requests,
    long AdapterLoads,
    double SimulatedSeconds,
    double TokensPerSecond,
    Percentiles TtftMs,
    Percentiles EndToEndMs,
    IReadOnlyList<long> LoadsPerReplica)
{
    public double LoadsPerThousandRequests => AdapterLoads * 1000.0 / Requests;
}
