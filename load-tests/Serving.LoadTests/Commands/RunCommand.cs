using Serving.LoadTests.Reporting;
using Serving.LoadTests.Running;

namespace Serving.LoadTests.Commands;

/// <summary><c>run</c>: one scenario against a running server; prints the Markdown report and writes the report folder.</summary>
internal static class RunCommand
{
    public static async Task<int> ExecuteAsync(CommandOptions options, IProgressView progress, CancellationToken cancellationToken)
    {
        var scenario = options.Scenario();
        string label = options.Get("label") ?? "run";
        string outDir = options.Get("out") ?? Path.Combine("load-results", $"run-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
        string? json = options.Get("json");
        options.RefuseUnknown();
        var (summary, run) = await LoadSession.RunAsync(label, scenario, progress, cancellationToken);
        string markdown = MarkdownReport.Runs($"Load run: {scenario.Arrival.Mode} {(scenario.Arrival.Mode == "closed" ? $"C={scenario.Arrival.Concurrency}" : $"λ={scenario.Arrival.Rate}/s")}, {scenario.Protocol}, {summary.Requests} requests",
            [summary], [$"Target {scenario.Target}; plots: latency-cdf.png"]);
        Console.WriteLine(markdown);
        ReportFiles.Write(outDir, markdown, new { scenario, runs = new[] { summary } }, [(label, run.Outcomes)]);
        PlotWriter.LatencyCdf(Path.Combine(outDir, "latency-cdf.png"), [(label, run.Outcomes)]);
        if (json is not null)
            ReportFiles.WriteJson(json, new { scenario, runs = new[] { summary } });
        Console.Error.WriteLine($"report: {Path.GetFullPath(outDir)}");
        return 0;
    }
}
