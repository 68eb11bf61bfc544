using System.Text.Json;

namespace Serving.Server.Hosting;

/// <summary>
/// vLLM's <c>--pooler-config '{"pooling_type": "MEAN", "normalize": true}'</c> (its older name
/// <c>--override-pooler-config</c> too), read into <c>Serving:Embeddings:*</c>: <c>pooling_type</c> <c>LAST</c>,
/// <c>MEAN</c> or <c>CLS</c> over the folder's Pooling module, <c>normalize</c> the default of a request's
/// <c>normalize</c>. Any other key or pooling type is a start-up problem naming it.
/// </summary>
public static class PoolerConfigArgument
{
    public const string Switch = "--pooler-config", OlderSwitch = "--override-pooler-config";

    private static readonly Dictionary<string, string> PoolingTypes = new(StringComparer.Ordinal)
    {
        ["LAST"] = "LastToken", ["MEAN"] = "Mean", ["CLS"] = "Cls",
    };

    /// <summary>The reader of switch <paramref name="name"/> (either spelling), whose problems name it.</summary>
    public static Func<string, List<string>, IReadOnlyList<string>> For(string name) => (json, problems) => Settings(name, json, problems);

    private static IReadOnlyList<string> Settings(string name, string json, List<string> problems)
        => JsonConfigArguments.ReadProperties(name, json, problems, (property, settings) =>
        {
            var value = property.Value;
            switch (property.Name)
            {
                case "pooling_type" when value.ValueKind == JsonValueKind.String && PoolingTypes.TryGetValue(value.GetString()!, out string? pooling):
                    settings.AddRange(["--Serving:Embeddings:Pooling", pooling]);
                    break;
                case "pooling_type":
                    problems.Add($"{name}: pooling_type {value.GetRawText()} is not served (this server pools by {string.Join(", ", PoolingTypes.Keys)})");
                    break;
                case "normalize" when value.ValueKind is JsonValueKind.True or JsonValueKind.False:
                    settings.AddRange(["--Serving:Embeddings:Normalize", value.ValueKind == JsonValueKind.True ? "true" : "false"]);
                    break;
                case "normalize":
                    problems.Add($"{name}: normalize must be true or false");
                    break;
                default:
                    problems.Add($"{name}: '{property.Name}' is not supported (known: pooling_type, normalize)");
                    break;
            }
        }) ?? [];
}
