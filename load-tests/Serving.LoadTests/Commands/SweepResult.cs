using Serving.LoadTests.Clients;
using Serving.LoadTests.Reporting;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Commands;

/// <summary>The runs of one sweep: by closed-loop concurrency and by number of distinct adapters.</summary>
internal sealed record SweepResult(
    int[] Concurrency,
    IReadOnlyList<RunSummary> ByConcurrency,
    int[] Adapters,
    IReadOnlyList<RunSummary> ByAdapters,
    IReadOnlyList<(string Label, IReadOnlyList<RequestOutcome> Outcomes)> Runs)
{
    /// <summary>Runs outside the sweep (a comparison's single run).</summary>
    public IReadOnlyList<RunSummary> Extra { get; init; } = [];

    public IEnumerable<RunSummary> All => ByConcurrency.Concat(ByAdapters).Concat(Extra);

    public string Markdown(string title)
    {
        var md = "";
        if (ByConcurrency.Count > 0)
            md += MarkdownReport.Runs($"{title}: throughput and latency vs concurrency", ByConcurrency);
        if (ByAdapters.Count > 0)
            md += "\n" + MarkdownReport.Runs($"{title}: throughput and latency vs distinct adapters", ByAdapters);
        return md;
    }

    public object Figures(Scenario scenario) => new { scenario, concurrency = Concurrency, by_concurrency = ByConcurrency, adapters = Adapters, by_adapters = ByAdapters };

    /// <summary>Writes the three figures, one line per labelled result (two for a comparison).</summary>
    public void Plot(string outDir, IReadOnlyList<(string Label, SweepResult Result)> series)
    {
        if (series.Any(s => s.Result.ByConcurrency.Count > 0))
            PlotWriter.Throughput(Path.Combine(outDir, "throughput-vs-concurrency.png"), "Throughput vs concurrency", "concurrent clients (closed loop)",
                [.. series.Select(s => (s.Label, s.Result.Concurrency.Select(c => (double)c).ToArray(), s.Result.ByConcurrency.Select(r => r.TokensPerSecond).ToArray()))], logX: false);
        if (series.Any(s => s.Result.ByAdapters.Count > 0))
            PlotWriter.Throughput(Path.Combine(outDir, "throughput-vs-adapters.png"), "Throughput vs number of distinct adapters", "distinct adapters in the traffic (log scale)",
                [.. series.Select(s => (s.Label, s.Result.Adapters.Select(n => (double)Math.Max(n, 1)).ToArray(), s.Result.ByAdapters.Select(r => r.TokensPerSecond).ToArray()))], logX: true);
        PlotWriter.LatencyCdf(Path.Combine(outDir, "latency-cdf.png"), [.. series.SelectMany(s => s.Result.Runs)]);
    }
}
