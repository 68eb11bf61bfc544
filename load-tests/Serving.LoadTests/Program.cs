using Serving.LoadTests.Commands;
using Serving.LoadTests.Running;
using Serving.LoadTests.Scenarios;

// Usage (see load-tests/README.md):
//   Serving.LoadTests run      --scenario FILE [--target URL] [--protocol rest|grpc] [--requests N] [--duration S] [--concurrency C | --rate R] [--out DIR] [--json FILE]
//   Serving.LoadTests sweep    --scenario FILE [--sweep-concurrency 1,8,32] [--sweep-adapters 1,8,32,128,1000] [--out DIR] [--json FILE]
//   Serving.LoadTests compare  --scenario FILE (--server Serving.Server.dll --a "ARGS" --b "ARGS" | --target-a URL --target-b URL) [--label-a A --label-b B] [--sweep-...]
//   Serving.LoadTests overload --scenario FILE (--server Serving.Server.dll --args "ARGS" | --target URL) [--factor 3 --overload-seconds 60 --capacity-seconds 20 --capacity-concurrency 8 --baseline-requests 64]
//   Serving.LoadTests soak     --scenario FILE (--server Serving.Server.dll --args "ARGS" | --target URL) [--soak-seconds 600 --warm-up 60 --sample-seconds 5]
//   Serving.LoadTests report   --json FILE[,FILE...] [--out DIR]   (PNG figures from what sweep/compare recorded with --json)
//   Serving.LoadTests scaleout [--replicas 4 --slots 8 --adapters 200 --zipf-s 1 --requests 20000 --rate 25 ...] [--json FILE]
using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};
try
{
    var options = new CommandOptions(args.Skip(1));
    IProgressView progress = new ConsoleProgressView();
    return args.FirstOrDefault() switch
    {
        "run" => await RunCommand.ExecuteAsync(options, progress, cancel.Token),
        "sweep" => await SweepCommand.ExecuteAsync(options, progress, cancel.Token),
        "compare" => await CompareCommand.ExecuteAsync(options, progress, cancel.Token),
        "scaleout" => ScaleOutCommand.Execute(options),
        "overload" => await OverloadCommand.ExecuteAsync(options, progress, cancel.Token),
        "soak" => await SoakCommand.ExecuteAsync(options, progress, cancel.Token),
        "report" => ReportCommand.Execute(options),
        _ => Usage(),
    };
}
catch (ScenarioException ex)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 2;
}

static int Usage()
{
    Console.Error.WriteLine("usage: Serving.LoadTests run|sweep|compare|overload|soak|scaleout|report [options]   (see load-tests/README.md)");
    return 2;
}
