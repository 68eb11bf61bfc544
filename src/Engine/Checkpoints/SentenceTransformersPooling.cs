using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Engine.Checkpoints;

/// <summary>
/// How a sentence-transformers model folder pools its token states into one embedding: <c>modules.json</c> names the
/// Pooling module's folder, whose <c>config.json</c> sets one <c>pooling_mode_*</c> flag (Qwen3-Embedding and e5-mistral:
/// <c>lasttoken</c>).
/// </summary>
public static class SentenceTransformersPooling
{
    private static readonly string[] Modes = ["lasttoken", "cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens"];

    /// <summary>The mode (<c>lasttoken</c>, <c>mean_tokens</c>, …), or null when the folder declares no pooling.</summary>
    public static string? Read(string directory)
    {
        string modules = Path.Combine(directory, "modules.json");
        if (!File.Exists(modules))
            return null;
        try
        {
            var pooling = JsonNode.Parse(File.ReadAllText(modules))?.AsArray()
                .FirstOrDefault(m => ((string?)m?["type"])?.EndsWith(".Pooling", StringComparison.Ordinal) == true);
            if (pooling is null)
                return null;
            string root = Path.GetFullPath(directory), folder = Path.GetFullPath(Path.Combine(root, (string?)pooling["path"] ?? ""));
            if (!folder.StartsWith(root, StringComparison.Ordinal))
                throw new ModelLoadException($"{modules}: the Pooling module's path leaves the model folder");
            string config = Path.Combine(folder, "config.json");
            var settings = File.Exists(config) ? JsonNode.Parse(File.ReadAllText(config)) : null;
            return Modes.FirstOrDefault(mode => settings?["pooling_mode_" + mode] is JsonValue v && v.GetValueKind() == JsonValueKind.True)
                ?? throw new ModelLoadException($"{config}: sets no pooling_mode_* flag this server knows ({string.Join(", ", Modes)})");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            throw new ModelLoadException($"{modules}: not a sentence-transformers module list: {ex.Message}", ex);
        }
    }
}
