using Serving.Authoring.Training;

namespace Serving.Authoring.Tests.Training;

public sealed class TrainingProgressReporterTests
{
    [Fact]
    public void Report_Redirected_PlainLineEveryTenthWithAnEstimate()
    {
        var output = new StringWriter();
        var reporter = new TrainingProgressReporter(output, interactive: false);

        for (int step = 1; step <= 200; step++)
            reporter.Report(step, 200, 1.0 / step);

        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(11, lines.Length);                                   // step 1, then 20, 40, ... 200
        Assert.DoesNotContain('\r', output.ToString());
        Assert.StartsWith("step 1/200  loss 1.0000", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("step 20/200", lines[1], StringComparison.Ordinal);
        Assert.StartsWith("step 200/200  loss 0.0050", lines[^1], StringComparison.Ordinal);
        Assert.All(lines, l => Assert.Contains("s left", l, StringComparison.Ordinal));
    }

    [Fact]
    public void Report_Terminal_OneBarRedrawnInPlaceEndingWithANewLine()
    {
        var output = new StringWriter();
        var reporter = new TrainingProgressReporter(output, interactive: true);

        for (int step = 1; step <= 4; step++)
            reporter.Report(step, 4, 0.5);

        string text = output.ToString();
        Assert.Equal(4, text.Count(c => c == '\r'));
        Assert.EndsWith(Environment.NewLine, text, StringComparison.Ordinal);
        Assert.Contains("[" + new string('#', 30) + "] step 4/4", text, StringComparison.Ordinal);
    }
}
