using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Contracts.Generation;

namespace Serving.Engine.Checkpoints;

/// <summary>
/// What a sentence-transformers model folder does after its transformer (<c>modules.json</c>, in order): the Pooling
/// module's <c>pooling_mode_*</c> (Qwen3-Embedding and e5-mistral: <c>lasttoken</c>; EmbeddingGemma: <c>mean_tokens</c>),
/// then any Dense modules the pooled vector passes through (EmbeddingGemma's 768 → 3,072 → 768). A Normalize module is
/// the request's <c>normalize</c> (true by default) here, as in vLLM.
/// </summary>
public sealed class SentenceTransformersModules
{
    private static readonly string[] Modes = ["lasttoken", "cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens"];

    private SentenceTransformersModules(string? poolingMode, IReadOnlyList<SentenceTransformersDense> dense)
    {
        PoolingMode = poolingMode;
        Dense = dense;
    }

    /// <summary>The folder declares none.</summary>
    public static SentenceTransformersModules None { get; } = new(null, []);

    /// <summary>The Pooling module's mode (<c>lasttoken</c>, <c>mean_tokens</c>, …), or null when the folder declares no pooling.</summary>
    public string? PoolingMode { get; }

    /// <summary>The mode as this server pools: null for a mode it does not serve (max, sqrt-length mean, weighted mean) or none declared.</summary>
    public PromptPooling? Pooling => PoolingMode switch
    {
        "lasttoken" => PromptPooling.LastToken,
        "mean_tokens" => PromptPooling.Mean,
        "cls_token" => PromptPooling.Cls,
        _ => null,
    };

    /// <summary>The Dense modules after pooling, in order.</summary>
    public IReadOnlyList<SentenceTransformersDense> Dense { get; }

    /// <summary>A pooled state <c>[hidden]</c> through the Dense modules: <c>[the last one's out_features]</c> (itself when there are none).</summary>
    public float[] Apply(float[] pooled)
    {
        foreach (var dense in Dense)
            pooled = dense.Apply(pooled);
        return pooled;
    }

    /// <summary>The modules of <paramref name="directory"/> for a transformer of <paramref name="hidden"/> dimensions.</summary>
    public static SentenceTransformersModules Read(string directory, int hidden)
    {
        string modules = Path.Combine(directory, "modules.json");
        if (!File.Exists(modules))
            return None;
        JsonArray list;
        try
        {
            list = JsonNode.Parse(File.ReadAllText(modules))?.AsArray() ?? throw new ModelLoadException($"{modules}: not a sentence-transformers module list");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            throw new ModelLoadException($"{modules}: not a sentence-transformers module list: {ex.Message}", ex);
        }

        string? mode = null;
        var dense = new List<SentenceTransformersDense>();
        foreach (var module in list)
        {
            string type = (string?)module?["type"] ?? "";
            if (type.EndsWith(".Pooling", StringComparison.Ordinal))
                mode = Mode(ModuleFolder(directory, modules, module!));
            else if (type.EndsWith(".Dense", StringComparison.Ordinal))
            {
                var layer = SentenceTransformersDense.Read(ModuleFolder(directory, modules, module!));
                int inputs = dense.Count == 0 ? hidden : dense[^1].OutFeatures;
                if (layer.InFeatures != inputs)
                    throw new ModelLoadException($"{modules}: Dense module '{(string?)module!["path"]}' takes {layer.InFeatures} inputs, but what reaches it has {inputs}");
                dense.Add(layer);
            }
        }

        return new SentenceTransformersModules(mode, dense);
    }

    /// <summary>A module's folder, which must lie inside the model folder.</summary>
    private static string ModuleFolder(string directory, string modules, JsonNode module)
    {
        string root = Path.GetFullPath(directory), folder = Path.GetFullPath(Path.Combine(root, (string?)module["path"] ?? ""));
        if (folder != root && !folder.StartsWith(root.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new ModelLoadException($"{modules}: the {(string?)module["type"]} module's path leaves the model folder");
        return folder;
    }

    private static string Mode(string folder)
    {
        string config = Path.Combine(folder, "config.json");
        JsonNode? settings;
        try
        {
            settings = File.Exists(config) ? JsonNode.Parse(File.ReadAllText(config)) : null;
        }
        catch (JsonException ex)
        {
            throw new ModelLoadException($"{config}: {ex.Message}", ex);
        }

        return Modes.FirstOrDefault(mode => settings?["pooling_mode_" + mode] is JsonValue v && v.GetValueKind() == JsonValueKind.True)
            ?? throw new ModelLoadException($"{config}: sets no pooling_mode_* flag this server knows ({string.Join(", ", Modes)})");
    }
}
