namespace Serving.LoadTests.Metrics;

/// <summary>
/// The server's prefix cache counters at one moment (<c>vllm:prefix_cache_queries_total</c> and
/// <c>vllm:prefix_cache_hits_total</c>, both in prompt tokens); the difference of two scrapes gives the share of the
/// traffic's prompt tokens the cache served.
/// </summary>
internal sealed record PrefixCacheCounters(double QueriedTokens, double HitTokens)
{
    public const string QueriesName = "vllm:prefix_cache_queries_total";
    public const string HitsName = "vllm:prefix_cache_hits_total";

    public static PrefixCacheCounters From(IEnumerable<PrometheusSample> samples)
    {
        double queries = 0, hits = 0;
        foreach (var s in samples)
        {
            if (s.Name == QueriesName)
                queries += s.Value;
            else if (s.Name == HitsName)
                hits += s.Value;
        }

        return new PrefixCacheCounters(queries, hits);
    }

    public PrefixCacheCounters Minus(PrefixCacheCounters earlier) => new(QueriedTokens - earlier.QueriedTokens, HitTokens - earlier.HitTokens);

    /// <summary>hit tokens / queried tokens; NaN when nothing was queried (or the server does not export the counters).</summary>
    public double HitRate => QueriedTokens > 0 ? HitTokens / QueriedTokens : double.NaN;
}
