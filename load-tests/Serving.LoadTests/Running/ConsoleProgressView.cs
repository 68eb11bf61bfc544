using System.Diagnostics;
using System.Globalization;
using Serving.LoadTests.Scenarios;
using Spectre.Console;

namespace Serving.LoadTests.Running;

/// <summary>
/// Live progress on the terminal (Spectre.Console: a bar over the request or time bound, with throughput and
/// failures); when output is redirected, a plain line on stderr every few seconds instead, so logs stay readable.
/// </summary>
internal sealed class ConsoleProgressView : IProgressView
{
    public async Task<LoadRun> ShowAsync(string label, Scenario scenario, LiveCounters counters, Func<Task<LoadRun>> run)
    {
        var clock = Stopwatch.StartNew();
        var work = run();
        if (Console.IsErrorRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            while (await Task.WhenAny(work, Task.Delay(5000)) != work)
                Console.Error.WriteLine($"[{label}] {Line(counters, clock.Elapsed.TotalSeconds)}");
            return await work;
        }

        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(Markup.Escape(label), maxValue: 1.0);
                while (!work.IsCompleted)
                {
                    double done = Fraction(scenario, counters, clock.Elapsed.TotalSeconds);
                    task.Value = Math.Min(done, 0.999);
                    task.Description = Markup.Escape($"{label}  {Line(counters, clock.Elapsed.TotalSeconds)}");
                    await Task.WhenAny(work, Task.Delay(250));
                }

                task.Value = 1.0;
            });
        return await work;
    }

    private static double Fraction(Scenario scenario, LiveCounters counters, double elapsed)
    {
        double byCount = scenario.Requests is { } n ? (double)(counters.Completed + counters.Failed) / n : 0;
        double byTime = scenario.DurationSeconds is { } d ? elapsed / d : 0;
        return Math.Max(byCount, byTime);
    }

    private static string Line(LiveCounters counters, double elapsed) => string.Create(CultureInfo.InvariantCulture,
        $"ok {counters.Completed}, failed {counters.Failed}, in flight {counters.InFlight}, {counters.Tokens / Math.Max(elapsed, 1e-3):F0} tok/s");
}
