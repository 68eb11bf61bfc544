using System.Globalization;
using System.Text;
using System.Text.Json;
using Serving.LoadTests.Clients;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Reporting;

/// <summary>Writes a report folder: <c>report.md</c>, <c>summary.json</c> (the same figures), <c>outcomes-*.csv</c> (one row per request) and the plots.</summary>
internal static class ReportFiles
{
    public static void Write(string directory, string markdown, object figures, IEnumerable<(string Label, IReadOnlyList<RequestOutcome> Outcomes)> runs)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "report.md"), markdown);
        WriteJson(Path.Combine(directory, "summary.json"), figures);
        foreach (var (label, outcomes) in runs)
            File.WriteAllText(Path.Combine(directory, $"outcomes-{Slug(label)}.csv"), Csv(outcomes));
    }

    public static void WriteJson(string path, object figures)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, JsonSerializer.Serialize(figures, new JsonSerializerOptions(ScenarioFile.Json)
        {
            NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        }));
    }

    public static string Slug(string label) => new([.. label.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '-')]);

    private static string Csv(IReadOnlyList<RequestOutcome> outcomes)
    {
        var csv = new StringBuilder("index,kind,model,adapter,prompt_tokens,max_tokens,status,started_s,ttft_ms,tpot_ms,e2e_ms,output_tokens\n");
        foreach (var o in outcomes)
            csv.Append(CultureInfo.InvariantCulture, $"{o.Request.Index},{o.Request.Kind},{o.Request.Model},{o.Request.Adapter},{o.Request.PromptTokenIds.Length},{o.Request.MaxTokens},{o.Status},{o.StartedAtSeconds:F3},{o.TtftMs:F2},{o.TpotMs:F3},{o.EndToEndMs:F2},{o.OutputTokens}\n");
        return csv.ToString();
    }
}
