using System.Globalization;

namespace Serving.Server.Tests.Support;

/// <summary>How many adapter loads of one tier a server's <c>/metrics</c> text counts (<c>serving_adapter_load_seconds</c>).</summary>
public static class AdapterLoadCounts
{
    /// <returns>The count of tier <paramref name="tier"/> (for DoRA: <c>dora_scales</c> took the norms, <c>dora_scales_file</c> read them back); 0 when never recorded.</returns>
    public static int Of(string metrics, string tier)
    {
        string? line = metrics.Split('\n').SingleOrDefault(l => l.StartsWith("serving_adapter_load_seconds_count{", StringComparison.Ordinal)
            && l.Contains($"tier=\"{tier}\"", StringComparison.Ordinal));
        return line is null ? 0 : (int)double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
    }
}
