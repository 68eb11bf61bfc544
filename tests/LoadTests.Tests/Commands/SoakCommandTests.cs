using System.Text.Json.Nodes;
using Serving.LoadTests.Commands;
using Serving.LoadTests.Tests.Support;

namespace Serving.LoadTests.Tests.Commands;

/// <summary>
/// <c>soak</c> end to end, shortened: mixed traffic (adapters, mixtures, <c>auto</c>) against a server process, memory
/// scraped throughout, native tensors counted at the two idle points; the report carries the targets table.
/// </summary>
public sealed class SoakCommandTests(LoadTargetFixture server) : IClassFixture<LoadTargetFixture>, IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("serving-soak-").FullName;

    [Fact]
    public async Task Soak_MixedTraffic_ReportsMemoryDriftAndIdleTensorCounts()
    {
        string scenario = Path.Combine(_out, "scenario.json");
        File.WriteAllText(scenario, """
            {
              "adapters": { "count": 6, "popularity": "zipf", "zipf_s": 1.0 },
              "arrival": { "mode": "closed", "concurrency": 4 },
              "prompt_tokens": { "distribution": "uniform", "min": 4, "max": 16 },
              "output_tokens": { "distribution": "uniform", "min": 2, "max": 8 },
              "mixture_share": 0.2,
              "auto_share": 0.1,
              "duration_seconds": 60
            }
            """);
        string dll = Path.Combine(AppContext.BaseDirectory, "Serving.Server.dll");
        string args = $"--model '{server.ModelDirectory}' --adapters '{server.AdapterDirectory}' --adapter-registry '{Path.Combine(_out, "registry.json")}' " +
            "--dtype float32 --max-sequences 4 --max-context 256 --Logging:LogLevel:Default Warning";
        string dir = Path.Combine(_out, "report");
        int code = await SoakCommand.ExecuteAsync(new CommandOptions(["--scenario", scenario, "--server", dll, "--args", args, "--soak-seconds", "6",
            "--warm-up", "3", "--sample-seconds", "0.5", "--out", dir, "--json", Path.Combine(_out, "soak.json"), "--ready-timeout", "180"]),
            new SilentProgressView(), CancellationToken.None);

        Assert.Equal(0, code);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "soak.json")))!;
        var traffic = json["traffic"]!;
        Assert.True(traffic["succeeded"]!.GetValue<int>() > 10);
        Assert.Equal(traffic["requests"]!.GetValue<int>(), traffic["succeeded"]!.GetValue<int>());
        Assert.True(json["memory"]!.AsArray().Count >= 6);
        Assert.True(json["idle_after_warm_up"]!["native_tensors"]!.GetValue<double>() > 0);
        Assert.True(double.IsFinite(json["resident_drift"]!.GetValue<double>()));
        // The server process was started here, so both idle points follow a full GC induced over its diagnostics channel.
        Assert.True(json["idle_after_full_gc"]!.GetValue<bool>());
        Assert.True(double.IsFinite(json["live_heap_growth"]!.GetValue<double>()));
        string report = File.ReadAllText(Path.Combine(dir, "report.md"));
        Assert.Contains("| no growth of native tensors (idle counts) |", report, StringComparison.Ordinal);
        Assert.Contains("| live managed heap flat within ±5 % (idle, after a full GC) |", report, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_out, recursive: true);
}
