using System.Globalization;
using System.Text;
using Serving.LoadTests.Clients;
using Serving.LoadTests.Metrics;
using Serving.LoadTests.Reporting;

namespace Serving.LoadTests.Commands;

/// <summary>
/// The figures of an overload run: the unloaded baseline, the measured capacity, the overload phase (offered load a
/// multiple of capacity) split into admitted and rejected requests, the drain, the recovery run, and the server's memory.
/// </summary>
internal sealed record OverloadResult(
    RunSummary Baseline,
    RunSummary Capacity,
    double OfferedRate,
    RunSummary Overload,
    int Rejected,
    Percentiles RejectionMs,
    IReadOnlyDictionary<string, int> OtherFailures,
    double DrainSeconds,
    RunSummary Recovery,
    ServerMemorySample? Warm,
    ServerMemorySample? Peak,
    ServerMemorySample? After)
{
    /// <summary>The rejection statuses: REST 429 and gRPC RESOURCE_EXHAUSTED.</summary>
    public static bool IsRejection(RequestOutcome o) => o.Status is "429" or "ResourceExhausted";

    public double AdmittedP99OverBaseline => Overload.EndToEndMs.P99 / Baseline.EndToEndMs.P99;

    public double AdmittedTtftP99OverBaseline => Overload.TtftMs.P99 / Baseline.TtftMs.P99;

    public double RecoveryP99OverBaseline => Recovery.EndToEndMs.P99 / Baseline.EndToEndMs.P99;

    public double PeakResidentOverWarm => Peak is null || Warm is null ? double.NaN : Peak.ResidentBytes / Warm.ResidentBytes;

    /// <summary>The issue's targets, each with whether this run met it.</summary>
    public IReadOnlyList<(string Target, string Measured, bool Met)> Checks() =>
    [
        ("rejections answered within 50 ms (p99)", $"{RejectionMs.P99:F1} ms", Rejected > 0 && RejectionMs.P99 <= 50),
        ("admitted end-to-end p99 ≤ 2× unloaded p99", $"{AdmittedP99OverBaseline:F2}×", AdmittedP99OverBaseline <= 2),
        ("no failures other than rejections", OtherFailures.Count == 0 ? "0" : string.Join(", ", OtherFailures.Select(kv => $"{kv.Key}×{kv.Value}")), OtherFailures.Count == 0),
        ("memory bounded: peak RSS ≤ 1.5× warm RSS", $"{PeakResidentOverWarm:F2}×", PeakResidentOverWarm <= 1.5),
        ("full recovery: every request succeeds", $"{Recovery.Succeeded}/{Recovery.Requests}", Recovery.Failed == 0),
        ("full recovery: p99 ≤ 1.5× unloaded p99", $"{RecoveryP99OverBaseline:F2}×", RecoveryP99OverBaseline <= 1.5),
    ];

    public string Markdown()
    {
        var md = new StringBuilder("# Overload\n\n");
        md.Append(CultureInfo.InvariantCulture,
            $"Capacity {Capacity.RequestsPerSecond:F2} requests/s (closed loop); offered {OfferedRate:F2} requests/s (Poisson) for {Overload.WallSeconds:F0} s.\n\n");
        md.Append("| phase | sent | ok | rejected | other failures | e2e p50 (ms) | e2e p99 (ms) | TTFT p99 (ms) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
        void Row(string name, RunSummary s, int rejected, int other) => md.Append(CultureInfo.InvariantCulture,
            $"| {name} | {s.Requests} | {s.Succeeded} | {rejected} | {other} | {s.EndToEndMs.P50:F0} | {s.EndToEndMs.P99:F0} | {s.TtftMs.P99:F0} |\n");
        Row("unloaded (1 in flight)", Baseline, 0, Baseline.Failed);
        Row("capacity (closed loop)", Capacity, 0, Capacity.Failed);
        Row("overload", Overload, Rejected, OtherFailures.Values.Sum());
        Row("recovery (1 in flight)", Recovery, 0, Recovery.Failed);
        md.Append(CultureInfo.InvariantCulture, $"\nRejections: p50 {RejectionMs.P50:F1} ms, p90 {RejectionMs.P90:F1} ms, p99 {RejectionMs.P99:F1} ms. Queue drained {DrainSeconds:F1} s after the overload ended.\n\n");
        md.Append("| memory | warm (after baseline) | peak (overload) | after recovery |\n|---|---:|---:|---:|\n");
        static string Mib(double bytes) => double.IsNaN(bytes) ? "–" : (bytes / (1 << 20)).ToString("F0", CultureInfo.InvariantCulture) + " MiB";
        static string Count(double n) => double.IsNaN(n) ? "–" : n.ToString("F0", CultureInfo.InvariantCulture);
        md.Append($"| resident set | {Mib(Warm?.ResidentBytes ?? double.NaN)} | {Mib(Peak?.ResidentBytes ?? double.NaN)} | {Mib(After?.ResidentBytes ?? double.NaN)} |\n");
        md.Append($"| managed heap | {Mib(Warm?.ManagedBytes ?? double.NaN)} | {Mib(Peak?.ManagedBytes ?? double.NaN)} | {Mib(After?.ManagedBytes ?? double.NaN)} |\n");
        md.Append($"| native tensors | {Count(Warm?.NativeTensors ?? double.NaN)} | {Count(Peak?.NativeTensors ?? double.NaN)} | {Count(After?.NativeTensors ?? double.NaN)} |\n");
        md.Append("\n| target | measured | met |\n|---|---:|:---:|\n");
        foreach (var (target, measured, met) in Checks())
            md.Append($"| {target} | {measured} | {(met ? "✓" : "✗")} |\n");
        return md.ToString();
    }
}
