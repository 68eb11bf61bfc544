using System.Text;
using Serving.LoadTests.Reporting;
using Serving.LoadTests.Running;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Commands;

/// <summary>
/// <c>compare</c>: the same scenario (same seed, so the same requests) against two server configurations back to
/// back, and B/A ratios of every figure. Each configuration is either started here from <c>--server</c> with
/// <c>--a</c> / <c>--b</c> arguments (and stopped before the next starts, so they never share the machine) or is an
/// already-running <c>--target-a</c> / <c>--target-b</c>. With <c>--sweep-concurrency</c> / <c>--sweep-adapters</c>
/// both configurations run the whole sweep and the plots carry one line each.
/// </summary>
internal static class CompareCommand
{
    public static async Task<int> ExecuteAsync(CommandOptions options, IProgressView progress, CancellationToken cancellationToken)
    {
        var scenario = options.Scenario();
        string? server = options.Get("server");
        var configs = new[] { ("a", options.Get("label-a") ?? "A"), ("b", options.Get("label-b") ?? "B") }
            .Select(c => (Key: c.Item1, Label: c.Item2, Args: options.Get(c.Item1), Target: options.Get($"target-{c.Item1}"))).ToArray();
        int[] concurrency = options.IntList("sweep-concurrency") ?? [];
        int[] adapters = options.IntList("sweep-adapters") ?? [];
        var readyTimeout = TimeSpan.FromSeconds(options.Double("ready-timeout") ?? 900);
        string outDir = options.Get("out") ?? Path.Combine("load-results", $"compare-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
        string? json = options.Get("json");
        options.RefuseUnknown();
        foreach (var c in configs)
        {
            if ((c.Target is null) == (server is null || c.Args is null))
                throw new ScenarioException($"configuration {c.Key}: give either --server with --{c.Key} \"ARGS\", or --target-{c.Key} URL");
        }

        var results = new List<(string Label, SweepResult Result)>();
        foreach (var c in configs)
        {
            await using var launched = c.Target is null ? await ServerLauncher.StartAsync(server!, c.Args!, readyTimeout, cancellationToken) : null;
            var target = launched?.Address.ToString().TrimEnd('/') ?? c.Target!;
            var configured = scenario with { Target = target };
            var result = concurrency.Length + adapters.Length == 0
                ? await Single(c.Label, configured, progress, cancellationToken)
                : await SweepCommand.RunAsync($"{c.Label} ", configured, concurrency, adapters, progress, cancellationToken);
            results.Add((c.Label, result));
        }

        var (a, b) = (results[0], results[1]);
        var md = new StringBuilder($"# Compare: {b.Label} vs {a.Label}\n\n");
        md.Append(MarkdownReport.Runs("Runs", [.. a.Result.All.Concat(b.Result.All)]));
        foreach (var (x, y) in a.Result.All.Zip(b.Result.All))
            md.Append('\n').Append(MarkdownReport.Ratios(x, y));
        Console.WriteLine(md);
        var figures = new
        {
            scenario,
            concurrency = a.Result.Concurrency,
            adapters = a.Result.Adapters,
            a = new { label = a.Label, runs = a.Result.All },
            b = new { label = b.Label, runs = b.Result.All },
            ratios = a.Result.All.Zip(b.Result.All).Select(p => new
            {
                a = p.First.Label,
                b = p.Second.Label,
                tokens_per_second = p.Second.TokensPerSecond / p.First.TokensPerSecond,
                ttft_p50 = p.Second.TtftMs.P50 / p.First.TtftMs.P50,
                ttft_p99 = p.Second.TtftMs.P99 / p.First.TtftMs.P99,
                tpot_p50 = p.Second.TpotMs.P50 / p.First.TpotMs.P50,
            }),
        };
        ReportFiles.Write(outDir, md.ToString(), figures, results.SelectMany(r => r.Result.Runs));
        SweepResultPlot(outDir, results);
        if (json is not null)
            ReportFiles.WriteJson(json, figures);
        Console.Error.WriteLine($"report: {Path.GetFullPath(outDir)}");
        return 0;
    }

    private static void SweepResultPlot(string outDir, List<(string Label, SweepResult Result)> results) => results[0].Result.Plot(outDir, results);

    private static async Task<SweepResult> Single(string label, Scenario scenario, IProgressView progress, CancellationToken cancellationToken)
    {
        var (summary, run) = await LoadSession.RunAsync(label, scenario, progress, cancellationToken);
        return new SweepResult([], [], [], [], [(label, run.Outcomes)]) { Extra = [summary] };
    }
}
