using System.Globalization;
using System.Text.Json;

namespace Serving.Server.Hosting;

/// <summary>
/// vLLM's <c>--override-generation-config '{"temperature": 0.6, "top_p": 0.95}'</c>, read into
/// <c>Serving:Model:GenerationOverrides:*</c>: request defaults over the generation config's. <c>temperature</c>,
/// <c>top_p</c>, <c>top_k</c>, <c>repetition_penalty</c>, <c>min_p</c> and <c>max_new_tokens</c> (every request's cap) are
/// what this server takes from a generation config; any other key is a start-up problem naming it.
/// </summary>
public static class OverrideGenerationConfigArgument
{
    public const string Switch = "--override-generation-config";

    private static readonly Dictionary<string, (string Setting, bool Integer)> Keys = new(StringComparer.Ordinal)
    {
        ["temperature"] = ("Temperature", false), ["top_p"] = ("TopP", false), ["top_k"] = ("TopK", true),
        ["repetition_penalty"] = ("RepetitionPenalty", false), ["min_p"] = ("MinP", false), ["max_new_tokens"] = ("MaxNewTokens", true),
    };

    /// <summary>The settings <paramref name="json"/> stands for (key, value pairs as command-line arguments); its problems are added to <paramref name="problems"/>.</summary>
    public static IReadOnlyList<string> Settings(string json, List<string> problems)
        => JsonConfigArguments.ReadProperties(Switch, json, problems, (property, settings) =>
        {
            if (!Keys.TryGetValue(property.Name, out var key))
                problems.Add($"{Switch}: '{property.Name}' is not a default this server takes from a generation config (it takes {string.Join(", ", Keys.Keys)})");
            else if (property.Value.ValueKind != JsonValueKind.Number || key.Integer && !property.Value.TryGetInt32(out _))
                problems.Add($"{Switch}: {property.Name} must be {(key.Integer ? "an integer" : "a number")}");
            else
                settings.AddRange([$"--Serving:Model:GenerationOverrides:{key.Setting}", property.Value.GetDouble().ToString("R", CultureInfo.InvariantCulture)]);
        }) ?? [];
}
