namespace Serving.LoadTests.ScaleOut;

/// <summary>A request in the simulation; times in simulated milliseconds.</summary>
internal sealed class SimulatedRequest(int adapter, double arrivalMs, int outputTokens)
{
    public int Adapter { get; } = adapter;
    public double ArrivalMs { get; } = arrivalMs;
    public int Remaining { get; set; } = outputTokens;
    public double FirstTokenMs { get; set; } = double.NaN;
    public double FinishedMs { get; set; } = double.NaN;
}
