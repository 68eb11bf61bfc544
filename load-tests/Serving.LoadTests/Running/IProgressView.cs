using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Running;

internal interface IProgressView
{
    /// <summary>Shows a run's live counters while <paramref name="run"/> is in progress.</summary>
    Task<LoadRun> ShowAsync(string label, Scenario scenario, LiveCounters counters, Func<Task<LoadRun>> run);
}
