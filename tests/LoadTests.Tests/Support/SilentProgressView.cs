using Serving.LoadTests.Running;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Tests.Support;

/// <summary>Runs without drawing; records the last counters it saw so tests can check they moved.</summary>
internal sealed class SilentProgressView : IProgressView
{
    public LiveCounters? Last { get; private set; }

    public Task<LoadRun> ShowAsync(string label, Scenario scenario, LiveCounters counters, Func<Task<LoadRun>> run)
    {
        Last = counters;
        return run();
    }
}
