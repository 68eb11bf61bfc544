using System.Text.Json.Nodes;
using Serving.LoadTests.Commands;
using Serving.LoadTests.Tests.Support;

namespace Serving.LoadTests.Tests.Commands;

/// <summary>
/// <c>overload</c> end to end against a server process with a short queue: the overload phase gets 429s and nothing else
/// fails, the server drains, the recovery run succeeds in full, and the report carries the memory figures scraped from the
/// server's <c>/metrics</c> and the targets table. (Its timing targets are figures to read, not assertions, here.)
/// </summary>
public sealed class OverloadCommandTests(LoadTargetFixture server) : IClassFixture<LoadTargetFixture>, IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("serving-overload-").FullName;

    [Fact]
    public async Task Overload_ThreeTimesCapacity_RejectsWith429RecoversAndReportsMemory()
    {
        string scenario = Path.Combine(_out, "scenario.json");
        File.WriteAllText(scenario, """
            {
              "adapters": { "count": 4, "popularity": "zipf", "zipf_s": 1.0 },
              "prompt_tokens": { "distribution": "uniform", "min": 4, "max": 16 },
              "output_tokens": { "distribution": "fixed", "value": 8 },
              "requests": 8
            }
            """);
        string dll = Path.Combine(AppContext.BaseDirectory, "Serving.Server.dll");
        string args = $"--model '{server.ModelDirectory}' --adapters '{server.AdapterDirectory}' --adapter-registry '{Path.Combine(_out, "registry.json")}' " +
            "--dtype float32 --max-sequences 4 --max-context 256 --max-queued-requests 4 --Logging:LogLevel:Default Warning";
        string dir = Path.Combine(_out, "report");
        int code = await OverloadCommand.ExecuteAsync(new CommandOptions(["--scenario", scenario, "--server", dll, "--args", args, "--factor", "3",
            "--overload-seconds", "4", "--capacity-seconds", "3", "--capacity-concurrency", "4", "--baseline-requests", "8", "--out", dir,
            "--json", Path.Combine(_out, "overload.json"), "--ready-timeout", "180"]), new SilentProgressView(), CancellationToken.None);

        Assert.Equal(0, code);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_out, "overload.json")))!;
        var result = json["result"]!;
        Assert.True(result["rejected"]!.GetValue<int>() > 0, "3× capacity against a 4-deep queue was never rejected");
        Assert.Empty(result["other_failures"]!.AsObject());
        Assert.Equal(8, result["recovery"]!["succeeded"]!.GetValue<int>());
        Assert.True(result["overload"]!["succeeded"]!.GetValue<int>() > 0);
        var peak = result["peak"]!;
        Assert.True(peak["resident_bytes"]!.GetValue<double>() > 0);
        Assert.True(peak["managed_bytes"]!.GetValue<double>() > 0);
        Assert.True(peak["native_tensors"]!.GetValue<double>() > 0);
        Assert.True(json["memory"]!.AsArray().Count > 4);
        string report = File.ReadAllText(Path.Combine(dir, "report.md"));
        Assert.Contains("| rejections answered within 50 ms (p99) |", report, StringComparison.Ordinal);
        Assert.Contains("| resident set |", report, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_out, recursive: true);
}
