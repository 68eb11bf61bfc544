using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Contracts.Configuration;

/// <summary>The fields of <c>generation_config.json</c> the server uses as request defaults.</summary>
public sealed record GenerationDefaults
{
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public int? BosTokenId { get; init; }
    public double? Temperature { get; init; }
    public double? TopP { get; init; }
    public int? TopK { get; init; }

    /// <summary>A request's <c>repetition_penalty</c> default (Qwen2.5's 1.05, as vLLM applies it).</summary>
    public double? RepetitionPenalty { get; init; }

    /// <summary>A request's <c>min_p</c> default.</summary>
    public double? MinP { get; init; }

    /// <summary>
    /// The most tokens any request may generate (as vLLM takes it: a request's <c>max_tokens</c>, or what the context
    /// leaves, is cut to it); at least 1.
    /// </summary>
    public int? MaxNewTokens { get; init; }

    public static GenerationDefaults Load(string path)
    {
        if (!File.Exists(path))
            return new GenerationDefaults();
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new ModelConfigException($"{path}: expected a JSON object");
            return new GenerationDefaults
            {
                EosTokenIds = ModelConfig.IntOrList(o["eos_token_id"]),
                BosTokenId = o["bos_token_id"]?.GetValue<int>(),
                Temperature = o["temperature"]?.GetValue<double>(),
                TopP = o["top_p"]?.GetValue<double>(),
                TopK = o["top_k"]?.GetValue<int>(),
                RepetitionPenalty = o["repetition_penalty"]?.GetValue<double>(),
                MinP = o["min_p"]?.GetValue<double>(),
                MaxNewTokens = o["max_new_tokens"]?.GetValue<int>() is int most and < 1
                    ? throw new ModelConfigException($"{path}: max_new_tokens must be at least 1, got {most}")
                    : o["max_new_tokens"]?.GetValue<int>(),
            };
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException)
        {
            throw new ModelConfigException($"{path}: {ex.Message}");
        }
    }
}
