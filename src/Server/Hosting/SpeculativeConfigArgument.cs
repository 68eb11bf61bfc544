using System.Text.Json;

namespace Serving.Server.Hosting;

/// <summary>
/// vLLM's <c>--speculative-config '{"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 4}'</c>, so a
/// deployment's vLLM arguments start this server unchanged: read into <c>Serving:Speculation:*</c> settings. Only what this
/// server does is accepted — n-gram lookup (<c>"method": "ngram"</c>, or vLLM's older <c>"model": "[ngram]"</c>), the
/// tenant's earlier outputs besides (<c>"suffix"</c>) and the lookup lengths; a draft model, EAGLE,
/// Medusa, MTP or any other key is a start-up problem naming it.
/// </summary>
public static class SpeculativeConfigArgument
{
    public const string Switch = "--speculative-config";

    private static readonly Dictionary<string, string> Keys = new(StringComparer.Ordinal)
    {
        ["num_speculative_tokens"] = "Serving:Speculation:Tokens",
        ["prompt_lookup_max"] = "Serving:Speculation:PromptLookupMax",
        ["prompt_lookup_min"] = "Serving:Speculation:PromptLookupMin",
    };

    /// <summary>The settings <paramref name="json"/> stands for (key, value pairs as command-line arguments); its problems are added to <paramref name="problems"/>.</summary>
    public static IReadOnlyList<string> Settings(string json, List<string> problems)
    {
        string? method = null;
        var settings = JsonConfigArguments.ReadProperties(Switch, json, problems, (property, settings) =>
        {
            var value = property.Value;
            switch (property.Name)
            {
                case "method" or "model" when value.ValueKind == JsonValueKind.String && value.GetString() is "ngram" or "[ngram]" or "suffix":
                    method = value.GetString() == "suffix" ? "Suffix" : "Ngram";
                    break;
                case "method" or "model":
                    problems.Add($"{Switch}: {property.Name} {value.GetRawText()} is not supported (this server drafts by n-gram lookup, \"ngram\", from the tenant's earlier outputs too, \"suffix\", and from requests' predictions)");
                    break;
                case var name when Keys.TryGetValue(name, out string? key):
                    if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int n))
                        problems.Add($"{Switch}: {name} must be an integer");
                    else
                        settings.AddRange(["--" + key, n.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                    break;
                default:
                    problems.Add($"{Switch}: '{property.Name}' is not supported (known: method, model, {string.Join(", ", Keys.Keys)})");
                    break;
            }
        });
        if (settings is null)
            return [];
        if (method is null)
            problems.Add($"{Switch}: needs \"method\": \"ngram\" or \"suffix\"");
        return [.. settings, "--Serving:Speculation:Method", method ?? "Ngram"];
    }
}
