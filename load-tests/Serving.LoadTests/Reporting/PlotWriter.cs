using ScottPlot;
using Serving.LoadTests.Clients;

namespace Serving.LoadTests.Reporting;

/// <summary>PNG figures of the report (ScottPlot, rendered with SkiaSharp; no display needed).</summary>
internal static class PlotWriter
{
    private const int Width = 900, Height = 520;

    /// <summary>Empirical CDFs of TTFT and end-to-end latency of successful requests, one line per run.</summary>
    public static void LatencyCdf(string path, IReadOnlyList<(string Label, IReadOnlyList<RequestOutcome> Outcomes)> runs)
    {
        var plot = new Plot();
        foreach (var (label, outcomes) in runs)
        {
            foreach (var (metric, pick) in new (string, Func<RequestOutcome, double>)[] { ("TTFT", o => o.TtftMs), ("end-to-end", o => o.EndToEndMs) })
            {
                var sorted = outcomes.Where(o => o.Succeeded).Select(pick).Where(v => !double.IsNaN(v)).Order().ToArray();
                if (sorted.Length == 0)
                    continue;
                var fractions = Enumerable.Range(1, sorted.Length).Select(i => (double)i / sorted.Length).ToArray();
                var line = plot.Add.ScatterLine(sorted, fractions);
                line.LegendText = $"{label}: {metric}";
            }
        }

        plot.Title("Latency CDF (successful requests)");
        plot.XLabel("milliseconds");
        plot.YLabel("fraction of requests ≤ x");
        plot.ShowLegend(Alignment.LowerRight);
        Save(plot, path);
    }

    /// <summary>Throughput (output tokens/s) against an x series; <paramref name="logX"/> draws x on a log10 axis with its real values as ticks.</summary>
    public static void Throughput(string path, string title, string xLabel, IReadOnlyList<(string Label, double[] X, double[] TokensPerSecond)> series, bool logX) =>
        Lines(path, title, xLabel, "output tokens / s", series, logX);

    /// <summary>One line with markers per series (y from 0); <paramref name="logX"/> draws x on a log10 axis with its real values as ticks.</summary>
    public static void Lines(string path, string title, string xLabel, string yLabel, IReadOnlyList<(string Label, double[] X, double[] Y)> series, bool logX)
    {
        var plot = new Plot();
        foreach (var (label, x, y) in series)
        {
            var line = plot.Add.Scatter(logX ? [.. x.Select(Math.Log10)] : x, y);
            line.LegendText = label;
            line.MarkerSize = 8;
        }

        var ticks = series.SelectMany(s => s.X).Distinct().Order().ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            [.. ticks.Select(t => logX ? Math.Log10(t) : t)], [.. ticks.Select(t => t.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        double top = series.SelectMany(s => s.Y).Where(double.IsFinite).DefaultIfEmpty(1).Max();
        plot.Axes.SetLimitsY(0, top * 1.1);
        plot.ShowLegend(Alignment.LowerRight);
        Save(plot, path);
    }

    private static void Save(Plot plot, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        plot.SavePng(path, Width, Height);
    }
}
