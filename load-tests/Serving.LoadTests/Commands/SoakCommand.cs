using Serving.LoadTests.Metrics;
using Serving.LoadTests.Reporting;
using Serving.LoadTests.Running;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Commands;

/// <summary>
/// <c>soak</c>: the scenario's traffic (closed loop, its mix of adapters, <c>auto</c> and mixtures) for
/// <c>--warm-up</c> seconds, a pause until the server is idle, then for <c>--duration</c> seconds while the server's
/// resident set, managed heap and live native tensors are scraped every <c>--sample-seconds</c>, then idle again.
/// At both idle moments a server process of this machine (started here, or named by <c>--server-pid</c>) is made to run a
/// full GC first, so the managed heap compared there is the live one, not one phase of the GC's saw-tooth.
/// </summary>
internal static class SoakCommand
{
    public static async Task<int> ExecuteAsync(CommandOptions options, IProgressView progress, CancellationToken cancellationToken)
    {
        var scenario = options.Scenario();
        string? server = options.Get("server"), serverArgs = options.Get("args");
        double duration = options.Double("soak-seconds") ?? 600, warmUp = options.Double("warm-up") ?? 60, every = options.Double("sample-seconds") ?? 5;
        var readyTimeout = TimeSpan.FromSeconds(options.Double("ready-timeout") ?? 900);
        string outDir = options.Get("out") ?? Path.Combine("load-results", $"soak-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
        string? json = options.Get("json");
        int? serverPid = options.Int("server-pid");
        options.RefuseUnknown();
        if ((server is null) != (serverArgs is null))
            throw new ScenarioException("give --server with --args \"ARGS\" to start the server here, or neither to use --target");
        if (!(duration > 0) || !(warmUp > 0) || !(every > 0))
            throw new ScenarioException("--soak-seconds, --warm-up and --sample-seconds must be positive");

        await using var launched = server is null ? null : await ServerLauncher.StartAsync(server, serverArgs!, readyTimeout, cancellationToken);
        int? pid = launched?.ProcessId ?? serverPid;
        scenario = scenario with { Target = launched?.Address.ToString().TrimEnd('/') ?? scenario.Target, Requests = null };
        using var http = ServerCatalog.Http(new Uri(scenario.Target), scenario.ApiKey);
        var idle = new ServerMemorySampler(http, TimeSpan.FromHours(1));
        await using (idle)
        {
            await LoadSession.RunAsync("warm-up", scenario with { DurationSeconds = warmUp, Seed = scenario.Seed + 1 }, progress, cancellationToken);
            var afterWarmUp = await Idle(idle, pid, cancellationToken);
            RunSummary traffic;
            IReadOnlyList<ServerMemorySample> samples;
            await using (var sampler = new ServerMemorySampler(http, TimeSpan.FromSeconds(every)))
            {
                (traffic, _) = await LoadSession.RunAsync("soak", scenario with { DurationSeconds = duration }, progress, cancellationToken);
                samples = sampler.Samples;
            }

            var atEnd = await Idle(idle, pid, cancellationToken);
            var result = new SoakResult(traffic, samples, afterWarmUp.Sample, atEnd.Sample, afterWarmUp.FullGc && atEnd.FullGc);
            string md = result.Markdown();
            Console.WriteLine(md);
            var figures = new
            {
                scenario,
                traffic,
                resident_drift = result.ResidentDrift,
                managed_drift = result.ManagedDrift,
                live_heap_growth = result.LiveHeapGrowth,
                native_tensor_growth = result.NativeTensorGrowth,
                idle_after_warm_up = afterWarmUp.Sample,
                idle_at_end = atEnd.Sample,
                idle_after_full_gc = result.LiveHeapMeasured,
                checks = result.Checks().Select(c => new { target = c.Target, measured = c.Measured, met = c.Met }),
                memory = samples,
            };
            ReportFiles.Write(outDir, md, figures, []);
            if (json is not null)
                ReportFiles.WriteJson(json, figures);
            Console.Error.WriteLine($"report: {Path.GetFullPath(outDir)}");
        }

        return 0;
    }

    /// <summary>
    /// Waits (up to 5 minutes) until nothing runs or waits, induces a full GC where the process is known, then samples.
    /// </summary>
    private static async Task<(ServerMemorySample? Sample, bool FullGc)> Idle(ServerMemorySampler sampler, int? pid, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (DateTime.UtcNow < deadline)
        {
            var now = await sampler.SampleAsync(cancellationToken);
            if (now is { Waiting: 0, Running: 0 })
            {
                if (pid is null || !await FullGcTrigger.InduceAsync(pid.Value, cancellationToken))
                    return (now, false);
                return (await sampler.SampleAsync(cancellationToken), true);
            }

            await Task.Delay(200, cancellationToken);
        }

        return (null, false);
    }
}
