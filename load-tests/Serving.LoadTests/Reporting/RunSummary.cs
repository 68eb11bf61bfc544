using Serving.LoadTests.Metrics;
using Serving.LoadTests.Running;

namespace Serving.LoadTests.Reporting;

/// <summary>
/// The figures of one run: throughput over the run's wall time (requests/s counts successes, tokens/s generated
/// tokens of successful requests), latency percentiles of successful requests, failures by status, requests by kind,
/// the adapter tier hit rates and the prefix cache's token hit rate of the run, scraped from <c>/metrics</c> before and
/// after.
/// </summary>
internal sealed record RunSummary(
    string Label,
    int Requests,
    int Succeeded,
    double WallSeconds,
    double RequestsPerSecond,
    double TokensPerSecond,
    Percentiles TtftMs,
    Percentiles TpotMs,
    Percentiles EndToEndMs,
    IReadOnlyDictionary<string, int> ErrorsByStatus,
    IReadOnlyDictionary<string, int> RequestsByKind,
    IReadOnlyDictionary<string, double> AdapterHitRates,
    IReadOnlyDictionary<string, double> AdapterCacheCounts,
    double PrefixCacheHitRate)
{
    public static RunSummary From(string label, LoadRun run, AdapterCacheCounters cacheDuringRun, PrefixCacheCounters prefixCacheDuringRun)
    {
        var ok = run.Outcomes.Where(o => o.Succeeded).ToArray();
        double wall = Math.Max(run.WallSeconds, 1e-9);
        return new RunSummary(
            label,
            run.Outcomes.Count,
            ok.Length,
            run.WallSeconds,
            ok.Length / wall,
            ok.Sum(o => (double)o.OutputTokens) / wall,
            Percentiles.Of(ok.Select(o => o.TtftMs)),
            Percentiles.Of(ok.Select(o => o.TpotMs)),
            Percentiles.Of(ok.Select(o => o.EndToEndMs)),
            run.Outcomes.Where(o => !o.Succeeded).GroupBy(o => o.Status).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count()),
            run.Outcomes.GroupBy(o => o.Request.Kind.ToString().ToLowerInvariant()).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count()),
            cacheDuringRun.Tiers.ToDictionary(t => t, cacheDuringRun.HitRate),
            cacheDuringRun.Counts.OrderBy(kv => kv.Key.Tier, StringComparer.Ordinal).ThenBy(kv => kv.Key.Result, StringComparer.Ordinal)
                .ToDictionary(kv => $"{kv.Key.Tier}.{kv.Key.Result}", kv => kv.Value),
            prefixCacheDuringRun.HitRate);
    }

    public int Failed => Requests - Succeeded;
}
