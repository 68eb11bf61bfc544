using System.Globalization;
using System.Text;
using Serving.LoadTests.Metrics;
using Serving.LoadTests.Reporting;

namespace Serving.LoadTests.Commands;

/// <summary>
/// The figures of a soak: the traffic's summary, and the server's memory after warm-up. "Flat" compares the median of
/// the first fifth of the post-warm-up samples with the median of the last fifth (the managed heap saw-tooths with every
/// GC, so single samples say little); native tensors are compared at idle moments (nothing running or waiting), where
/// only long-lived tensors remain. Where the soak could make the server run a full GC at those idle moments
/// (<paramref name="LiveHeapMeasured"/>), the managed heap is judged there too: its live size, not the saw-tooth.
/// </summary>
internal sealed record SoakResult(
    RunSummary Traffic,
    IReadOnlyList<ServerMemorySample> Samples,
    ServerMemorySample? IdleAfterWarmUp,
    ServerMemorySample? IdleAtEnd,
    bool LiveHeapMeasured = false)
{
    public double ResidentDrift => Drift(s => s.ResidentBytes);

    public double ManagedDrift => Drift(s => s.ManagedBytes);

    /// <summary>Live managed heap at the end over after warm-up, minus one, both right after a full GC; NaN where not measured.</summary>
    public double LiveHeapGrowth => LiveHeapMeasured && IdleAfterWarmUp is { } a && IdleAtEnd is { } b ? b.ManagedBytes / a.ManagedBytes - 1 : double.NaN;

    public double NativeTensorGrowth => (IdleAtEnd?.NativeTensors ?? double.NaN) - (IdleAfterWarmUp?.NativeTensors ?? double.NaN);

    /// <summary>Last-fifth median over first-fifth median, minus one (0.03 = grew 3 %).</summary>
    private double Drift(Func<ServerMemorySample, double> value)
    {
        var values = Samples.Select(value).Where(v => !double.IsNaN(v)).ToArray();
        int window = Math.Max(1, values.Length / 5);
        if (values.Length < 2)
            return double.NaN;
        return Median(values[^window..]) / Median(values[..window]) - 1;
    }

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public IReadOnlyList<(string Target, string Measured, bool Met)> Checks() =>
    [
        ("resident set flat within ±5 % after warm-up", $"{ResidentDrift * 100:+0.0;-0.0} %", Math.Abs(ResidentDrift) <= 0.05),
        LiveHeapMeasured
            ? ("live managed heap flat within ±5 % (idle, after a full GC)", $"{LiveHeapGrowth * 100:+0.0;-0.0} %", Math.Abs(LiveHeapGrowth) <= 0.05)
            : ("managed heap flat within ±5 % after warm-up", $"{ManagedDrift * 100:+0.0;-0.0} %", Math.Abs(ManagedDrift) <= 0.05),
        ("no growth of native tensors (idle counts)", $"{NativeTensorGrowth:+0;-0;0}", NativeTensorGrowth <= 0),
        ("no failed requests", $"{Traffic.Failed}", Traffic.Failed == 0),
    ];

    public string Markdown()
    {
        var md = new StringBuilder("# Soak\n\n");
        md.Append(CultureInfo.InvariantCulture,
            $"{Traffic.Requests} requests over {Traffic.WallSeconds:F0} s ({Traffic.RequestsPerSecond:F2}/s, {Traffic.TokensPerSecond:F0} tokens/s), {Traffic.Failed} failed; kinds: {string.Join(", ", Traffic.RequestsByKind.Select(kv => $"{kv.Key} {kv.Value}"))}.\n\n");
        static string Mib(double bytes) => double.IsNaN(bytes) ? "–" : (bytes / (1 << 20)).ToString("F1", CultureInfo.InvariantCulture) + " MiB";
        var rss = Samples.Select(s => s.ResidentBytes).Where(v => !double.IsNaN(v)).DefaultIfEmpty(double.NaN).ToArray();
        var heap = Samples.Select(s => s.ManagedBytes).Where(v => !double.IsNaN(v)).DefaultIfEmpty(double.NaN).ToArray();
        md.Append("| memory after warm-up | min | max | drift (last fifth / first fifth) |\n|---|---:|---:|---:|\n");
        md.Append(CultureInfo.InvariantCulture, $"| resident set | {Mib(rss.Min())} | {Mib(rss.Max())} | {ResidentDrift * 100:+0.0;-0.0} % |\n");
        md.Append(CultureInfo.InvariantCulture, $"| managed heap | {Mib(heap.Min())} | {Mib(heap.Max())} | {ManagedDrift * 100:+0.0;-0.0} % |\n");
        if (LiveHeapMeasured)
            md.Append(CultureInfo.InvariantCulture, $"\nLive managed heap at idle after a full GC: {Mib(IdleAfterWarmUp!.ManagedBytes)} after warm-up, {Mib(IdleAtEnd!.ManagedBytes)} at the end.\n");
        md.Append(CultureInfo.InvariantCulture, $"\nLive native tensors at idle: {IdleAfterWarmUp?.NativeTensors:F0} after warm-up, {IdleAtEnd?.NativeTensors:F0} at the end.\n\n");
        md.Append("| target | measured | met |\n|---|---:|:---:|\n");
        foreach (var (target, measured, met) in Checks())
            md.Append($"| {target} | {measured} | {(met ? "✓" : "✗")} |\n");
        return md.ToString();
    }
}
