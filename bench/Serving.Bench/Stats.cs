namespace Serving.Bench;

/// <summary>Order statistics every benchmark reports: nearest-rank, no interpolation, so a figure is one measured sample.</summary>
internal static class Stats
{
    /// <summary>The upper median (the middle sample; of an even count, the larger of the two middle ones).</summary>
    public static double Median(IEnumerable<double> values) => Percentile(values, 0.5);

    /// <summary>The sample at rank ⌊p·n⌋ of the sorted values (clamped to the last); NaN when there are none.</summary>
    public static double Percentile(IEnumerable<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
    }
}
