using Serving.LoadTests.Clients;
using Serving.LoadTests.Metrics;
using Serving.LoadTests.Reporting;
using Serving.LoadTests.Running;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Commands;

/// <summary>
/// <c>overload</c>: offered load a multiple of the server's measured capacity, then recovery. Phases, on one server
/// (started here from <c>--server</c> and <c>--args</c>, or a running <c>--target</c>):
/// <list type="number">
/// <item>unloaded: after a warm-up run, the scenario's requests one at a time (<c>--baseline-requests</c>);</item>
/// <item>capacity: closed loop at <c>--capacity-concurrency</c> for <c>--capacity-seconds</c> → requests/s;</item>
/// <item>overload: Poisson arrivals at <c>--factor</c> × capacity for <c>--overload-seconds</c>, never capped by the client;</item>
/// <item>drain: until the server reports nothing waiting or running;</item>
/// <item>recovery: the unloaded run again (same requests).</item>
/// </list>
/// The server's resident set, managed heap and live native tensors are scraped every half second throughout.
/// </summary>
internal static class OverloadCommand
{
    public static async Task<int> ExecuteAsync(CommandOptions options, IProgressView progress, CancellationToken cancellationToken)
    {
        var scenario = options.Scenario();
        string? server = options.Get("server"), serverArgs = options.Get("args");
        double factor = options.Double("factor") ?? 3;
        double overloadSeconds = options.Double("overload-seconds") ?? 60, capacitySeconds = options.Double("capacity-seconds") ?? 20;
        int baselineRequests = options.Int("baseline-requests") ?? 64, capacityConcurrency = options.Int("capacity-concurrency") ?? 8;
        var readyTimeout = TimeSpan.FromSeconds(options.Double("ready-timeout") ?? 900);
        string outDir = options.Get("out") ?? Path.Combine("load-results", $"overload-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
        string? json = options.Get("json");
        options.RefuseUnknown();
        if ((server is null) != (serverArgs is null))
            throw new ScenarioException("give --server with --args \"ARGS\" to start the server here, or neither to use --target");
        if (!(factor > 0) || !(overloadSeconds > 0) || !(capacitySeconds > 0) || baselineRequests < 1 || capacityConcurrency < 1)
            throw new ScenarioException("--factor, --overload-seconds, --capacity-seconds, --baseline-requests and --capacity-concurrency must be positive");

        await using var launched = server is null ? null : await ServerLauncher.StartAsync(server, serverArgs!, readyTimeout, cancellationToken);
        scenario = scenario with { Target = launched?.Address.ToString().TrimEnd('/') ?? scenario.Target };
        using var http = ServerCatalog.Http(new Uri(scenario.Target), scenario.ApiKey);
        await using var memory = new ServerMemorySampler(http, TimeSpan.FromMilliseconds(500));

        var unloaded = scenario with { Arrival = scenario.Arrival with { Mode = "closed", Concurrency = 1 }, Requests = baselineRequests, DurationSeconds = null };
        // Warm-up (not measured): first-use costs (JIT, adapter loads into slots) are not what the baseline is about.
        await LoadSession.RunAsync("warm-up", unloaded with { Seed = scenario.Seed + 3 }, progress, cancellationToken);
        var (baseline, _) = await LoadSession.RunAsync("unloaded", unloaded, progress, cancellationToken);
        var warm = await memory.SampleAsync(cancellationToken);
        var (capacity, _) = await LoadSession.RunAsync("capacity", scenario with
        {
            Arrival = scenario.Arrival with { Mode = "closed", Concurrency = capacityConcurrency },
            Requests = null,
            DurationSeconds = capacitySeconds,
            Seed = scenario.Seed + 1,
        }, progress, cancellationToken);
        if (capacity.Succeeded == 0)
            throw new ScenarioException($"the capacity run had no successful request ({string.Join(", ", capacity.ErrorsByStatus.Select(kv => $"{kv.Key}×{kv.Value}"))})");

        double offered = factor * capacity.RequestsPerSecond;
        double overloadStart = memory.ElapsedSeconds;
        var (overload, overloadRun) = await LoadSession.RunAsync($"overload {factor:0.#}×", scenario with
        {
            Arrival = scenario.Arrival with { Mode = "poisson", Rate = offered, MaxInFlight = 1_000_000 },
            Requests = null,
            DurationSeconds = overloadSeconds,
            Seed = scenario.Seed + 2,
        }, progress, cancellationToken);
        double overloadEnd = memory.ElapsedSeconds;
        var drainClock = System.Diagnostics.Stopwatch.StartNew();
        while (drainClock.Elapsed < TimeSpan.FromMinutes(5))
        {
            var now = await memory.SampleAsync(cancellationToken);
            if (now is not null && now.Waiting == 0 && now.Running == 0)
                break;
            await Task.Delay(200, cancellationToken);
        }

        double drainSeconds = drainClock.Elapsed.TotalSeconds;
        var (recovery, _) = await LoadSession.RunAsync("recovery", unloaded, progress, cancellationToken);
        var after = await memory.SampleAsync(cancellationToken);
        var during = memory.Samples.Where(s => s.AtSeconds >= overloadStart && s.AtSeconds <= overloadEnd + drainSeconds && !double.IsNaN(s.ResidentBytes)).ToArray();
        var rejected = overloadRun.Outcomes.Where(OverloadResult.IsRejection).ToArray();
        var result = new OverloadResult(baseline, capacity, offered, overload, rejected.Length, Percentiles.Of(rejected.Select(o => o.EndToEndMs)),
            overloadRun.Outcomes.Where(o => !o.Succeeded && !OverloadResult.IsRejection(o)).GroupBy(o => o.Status).ToDictionary(g => g.Key, g => g.Count()),
            drainSeconds, recovery, warm, during.Length == 0 ? null : during.MaxBy(s => s.ResidentBytes), after);

        string md = result.Markdown();
        Console.WriteLine(md);
        var figures = new
        {
            scenario,
            factor,
            result,
            admitted_p99_over_baseline = result.AdmittedP99OverBaseline,
            admitted_ttft_p99_over_baseline = result.AdmittedTtftP99OverBaseline,
            recovery_p99_over_baseline = result.RecoveryP99OverBaseline,
            peak_resident_over_warm = result.PeakResidentOverWarm,
            checks = result.Checks().Select(c => new { target = c.Target, measured = c.Measured, met = c.Met }),
            memory = memory.Samples,
        };
        ReportFiles.Write(outDir, md, figures, [("overload", overloadRun.Outcomes)]);
        if (json is not null)
            ReportFiles.WriteJson(json, figures);
        Console.Error.WriteLine($"report: {Path.GetFullPath(outDir)}");
        return 0;
    }
}
