using Serving.Contracts.Configuration;
using Serving.Engine.Checkpoints;

namespace Serving.Runtime.Hosting;

/// <summary>
/// <c>Serving:Model:GenerationConfig</c> (vLLM's <c>--generation-config</c>): where a request's sampling defaults come from —
/// <c>auto</c>, the checkpoint's generation_config.json (temperature, top_p, top_k, repetition_penalty, min_p, and max_new_tokens as every request's cap);
/// <c>vllm</c>, none (temperature 1, top_p 1, no top_k, no penalty, as vLLM's own); or a folder whose generation_config.json is read instead — with <see cref="GenerationOverrides"/> over them. The
/// end-of-sequence tokens stay the checkpoint's whatever this says: they are the model's, not a sampling preference.
/// </summary>
internal static class GenerationConfigOption
{
    public const string Auto = "auto", Vllm = "vllm";

    public static GenerationDefaults Effective(GenerationDefaults checkpoint, string mode, GenerationOverrides overrides)
    {
        var chosen = mode switch
        {
            Auto => checkpoint,
            Vllm => new GenerationDefaults { EosTokenIds = checkpoint.EosTokenIds, BosTokenId = checkpoint.BosTokenId },
            _ => FromFolder(checkpoint, mode),
        };
        return chosen with
        {
            Temperature = overrides.Temperature ?? chosen.Temperature,
            TopP = overrides.TopP ?? chosen.TopP,
            TopK = overrides.TopK ?? chosen.TopK,
            RepetitionPenalty = overrides.RepetitionPenalty ?? chosen.RepetitionPenalty,
            MinP = overrides.MinP ?? chosen.MinP,
            MaxNewTokens = overrides.MaxNewTokens ?? chosen.MaxNewTokens,
        };
    }

    /// <summary>The problem with <paramref name="mode"/>, or null.</summary>
    public static string? Problem(string mode) =>
        mode is Auto or Vllm || File.Exists(Path.Combine(mode, "generation_config.json")) ? null
        : $"Serving:Model:GenerationConfig (--generation-config) '{mode}' is not auto, vllm, nor a folder holding generation_config.json";

    private static GenerationDefaults FromFolder(GenerationDefaults checkpoint, string folder)
    {
        try
        {
            return GenerationDefaults.Load(Path.Combine(folder, "generation_config.json")) with { EosTokenIds = checkpoint.EosTokenIds, BosTokenId = checkpoint.BosTokenId };
        }
        catch (ModelConfigException ex)
        {
            throw new ModelLoadException($"--generation-config: {ex.Message}", ex);
        }
    }
}
