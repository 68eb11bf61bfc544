using Serving.LoadTests.Clients;
using Serving.LoadTests.Reporting;
using Serving.LoadTests.Running;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Commands;

/// <summary>
/// <c>sweep</c>: the scenario at several closed-loop concurrencies (<c>--sweep-concurrency 1,8,32,64</c>) and with several
/// numbers of distinct adapters (<c>--sweep-adapters 1,8,32,128,1000</c>, at the scenario's own arrival), against one
/// running server; writes throughput-vs-concurrency.png, throughput-vs-adapters.png and latency-cdf.png.
/// </summary>
internal static class SweepCommand
{
    public static async Task<int> ExecuteAsync(CommandOptions options, IProgressView progress, CancellationToken cancellationToken)
    {
        var scenario = options.Scenario();
        int[] concurrency = options.IntList("sweep-concurrency") ?? [1, 8, 32];
        int[] adapters = options.IntList("sweep-adapters") ?? [];
        string outDir = options.Get("out") ?? Path.Combine("load-results", $"sweep-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
        string? json = options.Get("json");
        options.RefuseUnknown();
        var result = await RunAsync("", scenario, concurrency, adapters, progress, cancellationToken);
        var markdown = result.Markdown("Sweep");
        Console.WriteLine(markdown);
        ReportFiles.Write(outDir, markdown, result.Figures(scenario), result.Runs);
        result.Plot(outDir, [("", result)]);
        if (json is not null)
            ReportFiles.WriteJson(json, result.Figures(scenario));
        Console.Error.WriteLine($"report: {Path.GetFullPath(outDir)}");
        return 0;
    }

    public static async Task<SweepResult> RunAsync(string prefix, Scenario scenario, int[] concurrency, int[] adapters, IProgressView progress, CancellationToken cancellationToken)
    {
        var byConcurrency = new List<RunSummary>();
        var byAdapters = new List<RunSummary>();
        var runs = new List<(string, IReadOnlyList<RequestOutcome>)>();
        foreach (int c in concurrency)
        {
            var (summary, run) = await LoadSession.RunAsync($"{prefix}C={c}", scenario with { Arrival = scenario.Arrival with { Mode = "closed", Concurrency = c } }, progress, cancellationToken);
            byConcurrency.Add(summary);
            runs.Add((summary.Label, run.Outcomes));
        }

        foreach (int n in adapters)
        {
            // Fewer adapters than a mixture needs (or none at all) drop the request kinds that cannot be formed.
            var variant = ScenarioFile.Check(scenario with
            {
                Adapters = scenario.Adapters with { Ids = null, Count = n },
                MixtureShare = n < scenario.MixtureSize ? 0 : scenario.MixtureShare,
                AutoShare = n == 0 ? 0 : scenario.AutoShare,
            }, $"--sweep-adapters {n}");
            var (summary, run) = await LoadSession.RunAsync($"{prefix}adapters={n}", variant, progress, cancellationToken);
            byAdapters.Add(summary);
            runs.Add((summary.Label, run.Outcomes));
        }

        return new SweepResult(concurrency, byConcurrency, adapters, byAdapters, runs);
    }
}
