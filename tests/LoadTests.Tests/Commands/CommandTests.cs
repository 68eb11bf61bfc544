using System.Diagnostics;
using System.Text.Json.Nodes;
using Serving.LoadTests.Commands;
using Serving.LoadTests.Running;
using Serving.LoadTests.Tests.Support;

namespace Serving.LoadTests.Tests.Commands;

/// <summary>The commands end to end: report folders, plots, the comparison of two server processes, and CLI errors.</summary>
public sealed class CommandTests(LoadTargetFixture server) : IClassFixture<LoadTargetFixture>, IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("serving-load-out-").FullName;

    private string ScenarioFile(string target, int requests, int concurrency = 4) 
    {
        string path = Path.Combine(_out, $"scenario-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, $$"""
            {
              "target": "{{target}}",
              "adapters": { "count": 4, "popularity": "zipf", "zipf_s": 1.0 },
              "arrival": { "mode": "closed", "concurrency": {{concurrency}} },
              "prompt_tokens": { "distribution": "uniform", "min": 4, "max": 16 },
              "output_tokens": { "distribution": "fixed", "value": 4 },
              "mixture_share": 0.25,
              "requests": {{requests}}
            }
            """);
        return path;
    }

    [Fact]
    public async Task Run_Scenario_WritesMarkdownJsonCsvAndPlot()
    {
        string dir = Path.Combine(_out, "run");
        int code = await RunCommand.ExecuteAsync(new CommandOptions(["--scenario", ScenarioFile(server.Address.ToString().TrimEnd('/'), 12), "--out", dir, "--json", Path.Combine(_out, "run.json")]),
            new SilentProgressView(), CancellationToken.None);

        Assert.Equal(0, code);
        string report = File.ReadAllText(Path.Combine(dir, "report.md"));
        Assert.Contains("| throughput (output tokens/s) |", report, StringComparison.Ordinal);
        Assert.Contains("| TTFT p99 (ms) |", report, StringComparison.Ordinal);
        Assert.Contains("| adapter device hit rate |", report, StringComparison.Ordinal);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "run.json")))!;
        Assert.Equal(12, json["runs"]![0]!["succeeded"]!.GetValue<int>());
        Assert.Equal(13, File.ReadAllLines(Path.Combine(dir, "outcomes-run.csv")).Length);
        Png.AssertImage(Path.Combine(dir, "latency-cdf.png"), 900, 520);
    }

    [Fact]
    public async Task Sweep_ConcurrencyAndAdapters_WritesBothThroughputPlots()
    {
        string dir = Path.Combine(_out, "sweep");
        string recorded = Path.Combine(_out, "sweep.json");
        int code = await SweepCommand.ExecuteAsync(new CommandOptions(["--scenario", ScenarioFile(server.Address.ToString().TrimEnd('/'), 8), "--out", dir,
            "--sweep-concurrency", "1,4", "--sweep-adapters", "1,6", "--json", recorded]), new SilentProgressView(), CancellationToken.None);

        Assert.Equal(0, code);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")))!;
        Assert.Equal(2, json["by_concurrency"]!.AsArray().Count);
        Assert.Equal(["adapters=1", "adapters=6"], json["by_adapters"]!.AsArray().Select(r => r!["label"]!.GetValue<string>()));
        Png.AssertImage(Path.Combine(dir, "throughput-vs-concurrency.png"), 900, 520);
        Png.AssertImage(Path.Combine(dir, "throughput-vs-adapters.png"), 900, 520);

        // The docs' pictures are redrawn from the recorded JSON alone.
        string figures = Path.Combine(_out, "figures");
        Assert.Equal(0, ReportCommand.Execute(new CommandOptions(["--json", recorded, "--out", figures])));
        foreach (string png in new[] { "sweep-throughput-vs-concurrency.png", "sweep-ttft-vs-concurrency.png", "sweep-throughput-vs-adapters.png" })
            Png.AssertImage(Path.Combine(figures, png), 900, 520);
    }

    [Fact]
    public async Task Compare_TwoServerProcesses_PrintsRatios()
    {
        // Both configurations are started as the container image starts the server: `dotnet Serving.Server.dll ARGS`.
        string dll = Path.Combine(AppContext.BaseDirectory, "Serving.Server.dll");
        string common = $"--model '{server.ModelDirectory}' --adapters '{server.AdapterDirectory}' --adapter-registry '{Path.Combine(_out, "registry.json")}' {string.Join(' ', LoadTargetFixture.ServerArguments)}";
        string dir = Path.Combine(_out, "compare");
        int code = await CompareCommand.ExecuteAsync(new CommandOptions(["--scenario", ScenarioFile("http://unused:1", 16), "--server", dll,
            "--a", common + " --batching-policy PerAdapter", "--label-a", "per-adapter",
            "--b", common + " --batching-policy Continuous", "--label-b", "continuous", "--out", dir, "--ready-timeout", "180",
            "--sweep-concurrency", "2,4", "--json", Path.Combine(_out, "policies.json")]),
            new SilentProgressView(), CancellationToken.None);

        Assert.Equal(0, code);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")))!;
        Assert.Equal(16, json["a"]!["runs"]![0]!["succeeded"]!.GetValue<int>());
        Assert.Equal(16, json["b"]!["runs"]![1]!["succeeded"]!.GetValue<int>());
        double ratio = json["ratios"]![0]!["tokens_per_second"]!.GetValue<double>();
        Assert.True(ratio > 0 && double.IsFinite(ratio));
        Assert.Contains("## continuous C=4 / per-adapter C=4", File.ReadAllText(Path.Combine(dir, "report.md")), StringComparison.Ordinal);
        string figures = Path.Combine(_out, "compare-figures");
        Assert.Equal(0, ReportCommand.Execute(new CommandOptions(["--json", Path.Combine(_out, "policies.json"), "--out", figures])));
        Png.AssertImage(Path.Combine(figures, "policies-throughput.png"), 900, 520);
        Png.AssertImage(Path.Combine(figures, "policies-ttft-p99.png"), 900, 520);
    }

    [Fact]
    public async Task Compare_ServerThatCannotStart_ReportsItsOutput()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "Serving.Server.dll");
        var ex = await Assert.ThrowsAsync<Serving.LoadTests.Scenarios.ScenarioException>(() => ServerLauncher.StartAsync(dll, "--model /nonexistent/model", TimeSpan.FromSeconds(60), CancellationToken.None));
        Assert.Contains("exited with code", ex.Message, StringComparison.Ordinal);
        Assert.Contains("/nonexistent/model", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("run --scenario MISSING.json", "no such scenario file")]
    [InlineData("run --scenario SCENARIO --bogus 1", "unknown option --bogus")]
    [InlineData("compare --scenario SCENARIO --a x", "give either --server")]
    [InlineData("scaleout --replicas 0", "must be at least 1")]
    [InlineData("frobnicate", "usage:")]
    [InlineData("report --json MISSING.json", "MISSING.json")]
    public async Task Main_BadCommandLine_ExitsTwoWithMessage(string arguments, string expected)
    {
        string scenario = ScenarioFile("http://127.0.0.1:1", 1);
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Serving.LoadTests.dll"));
        foreach (var arg in arguments.Replace("SCENARIO", scenario, StringComparison.Ordinal).Split(' '))
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        string stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.Equal(2, process.ExitCode);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Main_ScaleOut_PrintsTheComparisonTable()
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "Serving.LoadTests.dll"), "scaleout", "--requests", "2000", "--json", Path.Combine(_out, "scaleout.json"), "--out", Path.Combine(_out, "scaleout") })
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        string stdout = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.Equal(0, process.ExitCode);
        Assert.Contains("| adapter loads | ", stdout, StringComparison.Ordinal);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "scaleout.json")))!;
        Assert.Equal(2000, json["lora_affinity"]!["requests"]!.GetValue<int>());
        Assert.Contains("| adapter loads | ", File.ReadAllText(Path.Combine(_out, "scaleout", "report.md")), StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_out, recursive: true);
}
