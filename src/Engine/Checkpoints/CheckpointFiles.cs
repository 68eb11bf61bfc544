using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Contracts.Safetensors;

namespace Serving.Engine.Checkpoints;

/// <summary>
/// Where each tensor of a Hugging Face checkpoint lives: <c>model.safetensors</c>, or the shards that
/// <c>model.safetensors.index.json</c>'s <c>weight_map</c> names. Headers are parsed and validated once here. A checkpoint
/// saved as the bare transformer (<c>Qwen3Model</c>, <c>MistralModel</c>: <c>embed_tokens.weight</c>, <c>layers.…</c>, no
/// lm_head — how Qwen3-Embedding and e5-mistral ship) is read under the causal LM's names (<c>model.…</c>), and so is a
/// multimodal checkpoint's language model (Gemma 3 4B+: <c>language_model.model.…</c> as Google uploaded them,
/// <c>model.language_model.…</c> as transformers 4.52+ saves them); its vision tower and projector are left unread.
/// </summary>
public sealed class CheckpointFiles
{
    private readonly Dictionary<string, (SafetensorsFile File, SafetensorsTensorInfo Tensor)> _tensors;

    private CheckpointFiles(Dictionary<string, (SafetensorsFile, SafetensorsTensorInfo)> tensors, bool bare, bool languageModel) =>
        (_tensors, SavedAsBareModel, HoldsMultimodalModel) = (tensors, bare, languageModel);

    /// <summary>Whether the tensors are a multimodal model's, of which the language model's are read.</summary>
    public bool HoldsMultimodalModel { get; }

    /// <summary>Whether the tensors were saved without the causal LM's <c>model.</c> prefix: the transformer alone, as embedding models are.</summary>
    public bool SavedAsBareModel { get; }

    public IEnumerable<string> TensorNames => _tensors.Keys;

    public long TotalBytes => _tensors.Values.Sum(t => t.Tensor.ByteLength);

    public static CheckpointFiles Open(string modelDir)
    {
        string single = Path.Combine(modelDir, "model.safetensors");
        string index = Path.Combine(modelDir, "model.safetensors.index.json");
        var files = new List<string>();
        Dictionary<string, string>? weightMap = null;
        if (File.Exists(index))
        {
            weightMap = ReadWeightMap(index);
            files.AddRange(weightMap.Values.Distinct(StringComparer.Ordinal).Select(f => Path.Combine(modelDir, f)));
        }
        else if (File.Exists(single))
        {
            files.Add(single);
        }
        else
        {
            files.AddRange(Directory.GetFiles(modelDir, "*.safetensors").Order(StringComparer.Ordinal));
            if (files.Count == 0)
                throw new ModelLoadException($"{modelDir}: no model.safetensors, model.safetensors.index.json or *.safetensors file");
        }

        var tensors = new Dictionary<string, (SafetensorsFile, SafetensorsTensorInfo)>(StringComparer.Ordinal);
        foreach (string path in files)
        {
            if (!File.Exists(path))
                throw new ModelLoadException($"{index}: names shard '{Path.GetFileName(path)}', which does not exist");
            SafetensorsFile file;
            try
            {
                file = SafetensorsFile.Open(path);
            }
            catch (SafetensorsFormatException ex)
            {
                throw new ModelLoadException(ex.Message, ex);
            }

            foreach (var t in file.Tensors.Values)
            {
                if (weightMap is not null && weightMap.TryGetValue(t.Name, out var owner) && Path.Combine(modelDir, owner) != path)
                    continue;
                if (!tensors.TryAdd(t.Name, (file, t)))
                    throw new ModelLoadException($"{path}: tensor '{t.Name}' also appears in {tensors[t.Name].Item1.Path}");
            }
        }

        if (weightMap is not null)
            foreach (var (name, file) in weightMap)
                if (!tensors.ContainsKey(name))
                    throw new ModelLoadException($"{index}: tensor '{name}' is mapped to '{file}' but that file does not contain it");
        bool bare = !tensors.ContainsKey("model.embed_tokens.weight") && tensors.ContainsKey("embed_tokens.weight");
        if (bare)
            tensors = tensors.ToDictionary(kv => kv.Key.StartsWith("lm_head.", StringComparison.Ordinal) ? kv.Key : "model." + kv.Key, kv => kv.Value, StringComparer.Ordinal);
        var (languageModel, head) = new[] { ("language_model.model.", "language_model.lm_head."), ("model.language_model.", "lm_head.") }
            .FirstOrDefault(p => tensors.ContainsKey(p.Item1 + "embed_tokens.weight"));
        if (languageModel is not null)
            tensors = tensors
                .Where(kv => kv.Key.StartsWith(languageModel, StringComparison.Ordinal) || kv.Key.StartsWith(head, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key.StartsWith(head, StringComparison.Ordinal) ? "lm_head." + kv.Key[head.Length..] : "model." + kv.Key[languageModel.Length..],
                    kv => kv.Value, StringComparer.Ordinal);
        return new CheckpointFiles(tensors, bare, languageModel is not null);
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public (SafetensorsFile File, SafetensorsTensorInfo Tensor) Get(string name) =>
        _tensors.TryGetValue(name, out var entry) ? entry
            : throw new ModelLoadException($"checkpoint is missing tensor '{name}'");

    private static Dictionary<string, string> ReadWeightMap(string index)
    {
        try
        {
            var map = (JsonNode.Parse(File.ReadAllText(index)) as JsonObject)?["weight_map"] as JsonObject
                ?? throw new ModelLoadException($"{index}: missing 'weight_map' object");
            return map.ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>(), StringComparer.Ordinal);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            throw new ModelLoadException($"{index}: {ex.Message}", ex);
        }
    }
}
