using System.Text.Json;

namespace Serving.Server.Hosting;

/// <summary>
/// vLLM's switches whose value is a JSON object (<c>--speculative-config</c>, <c>--structured-outputs-config</c>,
/// <c>--override-generation-config</c>, <c>--pooler-config</c>), each
/// standing for the <c>Serving:*</c> settings it is read into.
/// </summary>
public static class JsonConfigArguments
{
    /// <summary>Each switch and what reads its JSON into settings (key, value pairs as command-line arguments), adding problems to the list.</summary>
    public static readonly IReadOnlyDictionary<string, Func<string, List<string>, IReadOnlyList<string>>> Switches =
        new Dictionary<string, Func<string, List<string>, IReadOnlyList<string>>>(StringComparer.Ordinal)
        {
            [SpeculativeConfigArgument.Switch] = SpeculativeConfigArgument.Settings,
            [StructuredOutputsConfigArgument.Switch] = StructuredOutputsConfigArgument.Settings,
            [OverrideGenerationConfigArgument.Switch] = OverrideGenerationConfigArgument.Settings,
            [PoolerConfigArgument.Switch] = PoolerConfigArgument.For(PoolerConfigArgument.Switch),
            [PoolerConfigArgument.OlderSwitch] = PoolerConfigArgument.For(PoolerConfigArgument.OlderSwitch),
        };

    /// <summary>
    /// The settings (key, value pairs as command-line arguments) that <paramref name="readProperty"/> reads from each of the
    /// JSON object's properties in turn; null, with the problem added, when <paramref name="json"/> is no JSON object.
    /// </summary>
    public static List<string>? ReadProperties(string jsonSwitch, string json, List<string> problems, Action<JsonProperty, List<string>> readProperty)
    {
        using var doc = ParseObject(jsonSwitch, json, problems);
        if (doc is null)
            return null;
        var settings = new List<string>();
        foreach (var property in doc.RootElement.EnumerateObject())
            readProperty(property, settings);
        return settings;
    }

    private static JsonDocument? ParseObject(string jsonSwitch, string json, List<string> problems)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            problems.Add($"{jsonSwitch}: not JSON ({e.Message})");
            return null;
        }

        if (doc.RootElement.ValueKind == JsonValueKind.Object)
            return doc;
        doc.Dispose();
        problems.Add($"{jsonSwitch}: must be a JSON object");
        return null;
    }

    /// <summary>
    /// The JSON switch <paramref name="args"/>[<paramref name="i"/>] is (<c>--switch JSON</c> or <c>--switch=JSON</c>) and its
    /// value, moving <paramref name="i"/> past it; null when it is none (the value is null when it is missing).
    /// </summary>
    public static (string Switch, string? Json)? Read(string[] args, ref int i)
    {
        string token = args[i];
        foreach (string name in Switches.Keys)
        {
            if (token == name)
                return (name, i + 1 < args.Length ? args[++i] : null);
            if (token.StartsWith(name + "=", StringComparison.Ordinal))
                return (name, token[(name.Length + 1)..]);
        }

        return null;
    }
}
