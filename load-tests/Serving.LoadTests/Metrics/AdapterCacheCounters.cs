namespace Serving.LoadTests.Metrics;

/// <summary>
/// The server's adapter tier counters (<c>serving_adapter_cache_total{tier, result}</c>) at one moment; the
/// difference of two scrapes gives the hit rates of the traffic in between.
/// </summary>
internal sealed record AdapterCacheCounters(IReadOnlyDictionary<(string Tier, string Result), double> Counts)
{
    public const string MetricName = "serving_adapter_cache_total";

    public static AdapterCacheCounters From(IEnumerable<PrometheusSample> samples) => new(samples
        .Where(s => s.Name == MetricName && s.Labels.ContainsKey("tier") && s.Labels.ContainsKey("result"))
        .GroupBy(s => (s.Labels["tier"], s.Labels["result"]))
        .ToDictionary(g => g.Key, g => g.Sum(s => s.Value)));

    public AdapterCacheCounters Minus(AdapterCacheCounters earlier) => new(Counts.ToDictionary(
        kv => kv.Key, kv => kv.Value - earlier.Counts.GetValueOrDefault(kv.Key)));

    public double Get(string tier, string result) => Counts.GetValueOrDefault((tier, result));

    /// <summary>hits / (hits + misses) of a tier; NaN when the tier saw no lookups.</summary>
    public double HitRate(string tier)
    {
        double hits = Get(tier, "hit"), misses = Get(tier, "miss");
        return hits + misses == 0 ? double.NaN : hits / (hits + misses);
    }

    public IEnumerable<string> Tiers => Counts.Keys.Select(k => k.Tier).Distinct().Order(StringComparer.Ordinal);
}
