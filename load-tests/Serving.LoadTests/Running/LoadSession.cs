using Serving.LoadTests.Clients;
using Serving.LoadTests.Metrics;
using Serving.LoadTests.Planning;
using Serving.LoadTests.Reporting;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Running;

/// <summary>
/// One labelled run of a scenario against a live server: reads its catalog, picks the adapters in play, scrapes
/// <c>/metrics</c> before and after (adapter tiers, prefix cache), drives the load with live progress, and summarises.
/// </summary>
internal static class LoadSession
{
    public static async Task<(RunSummary Summary, LoadRun Run)> RunAsync(string label, Scenario scenario, IProgressView progress, CancellationToken cancellationToken)
    {
        var target = new Uri(scenario.Target);
        using var http = ServerCatalog.Http(target, scenario.ApiKey);
        var catalog = await ServerCatalog.ReadAsync(http, cancellationToken);
        var adapters = PickAdapters(scenario, catalog);
        var timeout = TimeSpan.FromSeconds(scenario.RequestTimeoutSeconds);
        using ILoadClient client = scenario.Protocol == "grpc"
            ? new GrpcStreamingClient(target, scenario.ApiKey, timeout, adapters)
            : new RestStreamingClient(target, scenario.ApiKey, timeout, adapters);
        var counters = new LiveCounters();
        var runner = new LoadRunner(scenario, client, new RequestPlanner(scenario, catalog.BaseModel, adapters), counters);
        var before = await PrometheusText.ScrapeAsync(http, cancellationToken);
        var run = await progress.ShowAsync(label, scenario, counters, () => runner.RunAsync(cancellationToken));
        var after = await PrometheusText.ScrapeAsync(http, cancellationToken);
        return (RunSummary.From(label, run, AdapterCacheCounters.From(after).Minus(AdapterCacheCounters.From(before)),
            PrefixCacheCounters.From(after).Minus(PrefixCacheCounters.From(before))), run);
    }

    /// <summary>The scenario's explicit ids (each must exist), or the first <c>count</c> listed adapters.</summary>
    public static IReadOnlyList<string> PickAdapters(Scenario scenario, ServerCatalog catalog)
    {
        if (scenario.Adapters.Ids is { } ids)
        {
            var missing = ids.Where(id => !catalog.Adapters.Contains(id)).ToArray();
            return missing.Length == 0 ? ids
                : throw new ScenarioException($"adapters.ids: the server does not list {string.Join(", ", missing.Take(5))}{(missing.Length > 5 ? $" (+{missing.Length - 5} more)" : "")}");
        }

        return scenario.Adapters.Count <= catalog.Adapters.Count
            ? [.. catalog.Adapters.Take(scenario.Adapters.Count)]
            : throw new ScenarioException($"adapters.count: {scenario.Adapters.Count} adapters asked for, the server lists {catalog.Adapters.Count}");
    }
}
