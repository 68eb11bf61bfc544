using System.Globalization;

namespace Serving.LoadTests.Metrics;

/// <summary>Parses the Prometheus text format (version 0.0.4) that <c>/metrics</c> serves; comments and malformed lines are skipped.</summary>
internal static class PrometheusText
{
    /// <summary>The server's <c>/metrics</c> now; empty when it cannot be read (metrics off, or the key may not read them).</summary>
    public static async Task<List<PrometheusSample>> ScrapeAsync(HttpClient http, CancellationToken cancellationToken)
    {
        try
        {
            return Parse(await http.GetStringAsync("/metrics", cancellationToken));
        }
        catch (HttpRequestException)
        {
            return [];
        }
    }

    public static List<PrometheusSample> Parse(string text)
    {
        var samples = new List<PrometheusSample>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#')
                continue;
            int brace = line.IndexOf('{'), space;
            var labels = new Dictionary<string, string>();
            string name;
            if (brace >= 0 && brace < line.IndexOf(' '))
            {
                int close = line.LastIndexOf('}');
                if (close < brace)
                    continue;
                name = line[..brace];
                ParseLabels(line[(brace + 1)..close], labels);
                space = close + 1;
            }
            else
            {
                space = line.IndexOf(' ');
                if (space < 0)
                    continue;
                name = line[..space];
            }

            var valueText = line[space..].Trim().Split(' ')[0];
            if (double.TryParse(valueText, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
                || (valueText is "+Inf" or "-Inf" or "NaN" && double.TryParse(valueText.Replace("Inf", "Infinity", StringComparison.Ordinal), NumberStyles.Float, CultureInfo.InvariantCulture, out value)))
                samples.Add(new PrometheusSample(name, labels, value));
        }

        return samples;
    }

    private static void ParseLabels(string text, Dictionary<string, string> labels)
    {
        int i = 0;
        while (i < text.Length)
        {
            int eq = text.IndexOf('=', i);
            if (eq < 0 || eq + 1 >= text.Length || text[eq + 1] != '"')
                return;
            string key = text[i..eq].Trim().TrimStart(',').Trim();
            var value = new System.Text.StringBuilder();
            int j = eq + 2;
            for (; j < text.Length && text[j] != '"'; j++)
            {
                if (text[j] == '\\' && j + 1 < text.Length)
                {
                    j++;
                    value.Append(text[j] == 'n' ? '\n' : text[j]);
                }
                else
                {
                    value.Append(text[j]);
                }
            }

            labels[key] = value.ToString();
            i = j + 1;
            while (i < text.Length && (text[i] == ',' || text[i] == ' '))
                i++;
        }
    }
}
