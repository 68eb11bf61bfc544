using System.Globalization;
using System.Text;

namespace Serving.LoadTests.Reporting;

/// <summary>Markdown tables of run summaries (one column per run), and the ratio table of a comparison.</summary>
internal static class MarkdownReport
{
    public static string Runs(string title, IReadOnlyList<RunSummary> runs, IEnumerable<string>? notes = null)
    {
        var md = new StringBuilder($"## {title}\n\n");
        foreach (var note in notes ?? [])
            md.Append(note).Append("\n\n");
        md.Append("| metric | ").AppendJoin(" | ", runs.Select(r => r.Label)).Append(" |\n|---|").Append(string.Concat(runs.Select(_ => "---:|"))).Append('\n');
        Row(md, "requests (ok / sent)", runs, r => $"{r.Succeeded} / {r.Requests}");
        Row(md, "wall time (s)", runs, r => F(r.WallSeconds, 1));
        Row(md, "throughput (requests/s)", runs, r => F(r.RequestsPerSecond, 2));
        Row(md, "throughput (output tokens/s)", runs, r => F(r.TokensPerSecond, 1));
        foreach (var (name, pick) in new (string, Func<RunSummary, Percentiles>)[] { ("TTFT", r => r.TtftMs), ("TPOT", r => r.TpotMs), ("end-to-end", r => r.EndToEndMs) })
        {
            Row(md, $"{name} p50 (ms)", runs, r => F(pick(r).P50, 1));
            Row(md, $"{name} p90 (ms)", runs, r => F(pick(r).P90, 1));
            Row(md, $"{name} p99 (ms)", runs, r => F(pick(r).P99, 1));
        }

        foreach (var status in runs.SelectMany(r => r.ErrorsByStatus.Keys).Distinct().Order(StringComparer.Ordinal))
            Row(md, $"errors: {status}", runs, r => r.ErrorsByStatus.GetValueOrDefault(status).ToString(CultureInfo.InvariantCulture));
        if (runs.All(r => r.ErrorsByStatus.Count == 0))
            Row(md, "errors", runs, _ => "0");
        foreach (var kind in runs.SelectMany(r => r.RequestsByKind.Keys).Distinct().Order(StringComparer.Ordinal))
            Row(md, $"requests: {kind}", runs, r => r.RequestsByKind.GetValueOrDefault(kind).ToString(CultureInfo.InvariantCulture));
        foreach (var tier in runs.SelectMany(r => r.AdapterHitRates.Keys).Distinct().Order(StringComparer.Ordinal))
            Row(md, $"adapter {tier} hit rate", runs, r => r.AdapterHitRates.TryGetValue(tier, out double v) && !double.IsNaN(v) ? v.ToString("P1", CultureInfo.InvariantCulture) : "—");
        if (runs.Any(r => !double.IsNaN(r.PrefixCacheHitRate)))
            Row(md, "prefix cache hit rate (prompt tokens)", runs, r => double.IsNaN(r.PrefixCacheHitRate) ? "—" : r.PrefixCacheHitRate.ToString("P1", CultureInfo.InvariantCulture));
        return md.ToString();
    }

    /// <summary>B / A for every throughput and latency figure of two runs of the same scenario.</summary>
    public static string Ratios(RunSummary a, RunSummary b)
    {
        var md = new StringBuilder($"## {b.Label} / {a.Label}\n\n| metric | {a.Label} | {b.Label} | ratio |\n|---|---:|---:|---:|\n");
        void Line(string name, double x, double y) => md.Append(CultureInfo.InvariantCulture, $"| {name} | {F(x, 2)} | {F(y, 2)} | {F(y / x, 3)}× |\n");
        Line("throughput (output tokens/s)", a.TokensPerSecond, b.TokensPerSecond);
        Line("throughput (requests/s)", a.RequestsPerSecond, b.RequestsPerSecond);
        Line("TTFT p50 (ms)", a.TtftMs.P50, b.TtftMs.P50);
        Line("TTFT p90 (ms)", a.TtftMs.P90, b.TtftMs.P90);
        Line("TTFT p99 (ms)", a.TtftMs.P99, b.TtftMs.P99);
        Line("TPOT p50 (ms)", a.TpotMs.P50, b.TpotMs.P50);
        Line("TPOT p99 (ms)", a.TpotMs.P99, b.TpotMs.P99);
        Line("end-to-end p99 (ms)", a.EndToEndMs.P99, b.EndToEndMs.P99);
        return md.ToString();
    }

    private static void Row(StringBuilder md, string name, IReadOnlyList<RunSummary> runs, Func<RunSummary, string> cell) =>
        md.Append("| ").Append(name).Append(" | ").AppendJoin(" | ", runs.Select(cell)).Append(" |\n");

    private static string F(double value, int digits) => double.IsNaN(value) ? "—" : value.ToString("F" + digits, CultureInfo.InvariantCulture);
}
