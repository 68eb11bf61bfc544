using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Bench;

/// <summary>Collects named figures; prints them as a Markdown table and writes the same figures as JSON.</summary>
internal sealed class BenchReport(string title, params string[] columns)
{
    private readonly List<(string Metric, string Unit, double?[] Values)> _rows = [];
    private readonly JsonObject _context = [];

    public void Context(string key, JsonNode? value) => _context[key] = value;

    public void Add(string metric, string unit, params double?[] values)
    {
        if (values.Length != columns.Length)
            throw new ArgumentException($"row '{metric}' has {values.Length} values for {columns.Length} columns");
        _rows.Add((metric, unit, values));
        Console.Error.WriteLine($"  {metric}: {string.Join(" | ", values.Select(Format))} {unit}");
    }

    public string Markdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"### {title}").AppendLine();
        sb.AppendLine($"| metric | unit | {string.Join(" | ", columns)} |");
        sb.AppendLine($"|---|---|{string.Concat(columns.Select(_ => "---:|"))}");
        foreach (var (metric, unit, values) in _rows)
            sb.AppendLine($"| {metric} | {unit} | {string.Join(" | ", values.Select(Format))} |");
        return sb.ToString();
    }

    public void WriteJson(string path)
    {
        var rows = new JsonArray();
        foreach (var (metric, unit, values) in _rows)
        {
            var byColumn = new JsonObject();
            for (int i = 0; i < columns.Length; i++)
                byColumn[columns[i]] = values[i];
            rows.Add(new JsonObject { ["metric"] = metric, ["unit"] = unit, ["values"] = byColumn });
        }

        var root = new JsonObject { ["title"] = title, ["context"] = _context.DeepClone(), ["rows"] = rows };
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static string Format(double? v) => v switch
    {
        null => "–",
        double x when Math.Abs(x) >= 100 => x.ToString("F0", CultureInfo.InvariantCulture),
        double x when Math.Abs(x) >= 1 => x.ToString("F2", CultureInfo.InvariantCulture),
        double x => x.ToString("G3", CultureInfo.InvariantCulture),
    };
}
