using System.Text.Json;

namespace Serving.Server.Hosting;

/// <summary>
/// vLLM's <c>--structured-outputs-config '{"enable_in_reasoning": true}'</c>, read into <c>Serving:Chat:*</c> settings:
/// <c>enable_in_reasoning</c> holds a reasoning model's whole text to a request's format (by default its reasoning runs
/// free and the format holds the answer after it), <c>reasoning_parser</c> is <c>--reasoning-parser</c>, and
/// <c>backend</c> may only be <c>"auto"</c> (this server has one). Any other key is a start-up problem naming it.
/// </summary>
public static class StructuredOutputsConfigArgument
{
    public const string Switch = "--structured-outputs-config";

    /// <summary>The settings <paramref name="json"/> stands for (key, value pairs as command-line arguments); its problems are added to <paramref name="problems"/>.</summary>
    public static IReadOnlyList<string> Settings(string json, List<string> problems)
        => JsonConfigArguments.ReadProperties(Switch, json, problems, (property, settings) =>
        {
            var value = property.Value;
            switch (property.Name)
            {
                case "enable_in_reasoning" when value.ValueKind is JsonValueKind.True or JsonValueKind.False:
                    settings.AddRange(["--Serving:Chat:StructuredOutputsInReasoning", value.ValueKind == JsonValueKind.True ? "true" : "false"]);
                    break;
                case "reasoning_parser" when value.ValueKind == JsonValueKind.String:
                    settings.AddRange(["--Serving:Chat:ReasoningParser", value.GetString()!]);
                    break;
                case "backend" when value.ValueKind == JsonValueKind.String && value.GetString() == "auto":
                    break;
                case "enable_in_reasoning":
                    problems.Add($"{Switch}: enable_in_reasoning must be true or false");
                    break;
                case "reasoning_parser":
                    problems.Add($"{Switch}: reasoning_parser must be a string");
                    break;
                case "backend":
                    problems.Add($"{Switch}: backend {value.GetRawText()} is not available (this server compiles every format itself: \"auto\")");
                    break;
                default:
                    problems.Add($"{Switch}: '{property.Name}' is not supported (known: enable_in_reasoning, reasoning_parser, backend)");
                    break;
            }
        }) ?? [];
}
