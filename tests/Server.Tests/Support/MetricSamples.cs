using System.Globalization;
using System.Text.RegularExpressions;

namespace Serving.Server.Tests.Support;

/// <summary>A server's <c>/metrics</c> read as sums per metric name (over the label sets).</summary>
internal static partial class MetricSamples
{
    public static async Task<Dictionary<string, double>> ScrapeAsync(HttpClient http) =>
        MetricLine().Matches(await http.GetStringAsync("/metrics"))
            .GroupBy(m => m.Groups[1].Value).ToDictionary(g => g.Key, g => g.Sum(m => double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)));

    [GeneratedRegex(@"(?m)^([a-z_:]+)(?:\{[^}]*\})? ([0-9.eE+-]+)\s*$")]
    private static partial Regex MetricLine();
}
