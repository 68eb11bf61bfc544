using System.Diagnostics;
using System.Globalization;

namespace Serving.Authoring.Training;

/// <summary>
/// train-adapter's progress: on a terminal one bar redrawn in place; redirected (a log file, CI), a plain line every
/// tenth of the run, so the log holds no carriage returns. Both give step, loss, elapsed time and an estimate of the rest.
/// </summary>
/// <param name="output">Where the progress goes.</param>
/// <param name="interactive">True on a terminal (<c>!Console.IsOutputRedirected</c>).</param>
public sealed class TrainingProgressReporter(TextWriter output, bool interactive)
{
    private const int BarWidth = 30;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _lastTenth;

    /// <summary>Reports step <paramref name="step"/> of <paramref name="steps"/> (1-based) with that step's <paramref name="loss"/>.</summary>
    public void Report(int step, int steps, double loss)
    {
        var elapsed = _clock.Elapsed;
        var left = elapsed / step * (steps - step);
        string figures = string.Create(CultureInfo.InvariantCulture, $"step {step}/{steps}  loss {loss:F4}  {elapsed.TotalSeconds:F0} s, about {left.TotalSeconds:F0} s left");
        if (interactive)
        {
            int filled = step * BarWidth / steps;
            output.Write($"\r[{new string('#', filled)}{new string('.', BarWidth - filled)}] {figures} ");
            if (step == steps)
                output.WriteLine();
            return;
        }

        int tenth = step * 10 / steps;
        if (tenth > _lastTenth || step == 1)
        {
            _lastTenth = tenth;
            output.WriteLine(figures);
        }
    }
}
