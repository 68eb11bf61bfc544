namespace Serving.LoadTests.Reporting;

/// <summary>p50 / p90 / p99 (nearest rank) and the mean of a latency sample, milliseconds; NaN when empty.</summary>
internal sealed record Percentiles(double P50, double P90, double P99, double Mean, int Count)
{
    public static Percentiles Of(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        if (sorted.Length == 0)
            return new Percentiles(double.NaN, double.NaN, double.NaN, double.NaN, 0);
        return new Percentiles(At(sorted, 0.50), At(sorted, 0.90), At(sorted, 0.99), sorted.Average(), sorted.Length);
    }

    /// <summary>Nearest-rank percentile of an ascending array.</summary>
    public static double At(double[] sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
}
