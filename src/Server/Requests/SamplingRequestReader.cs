using Serving.Contracts.Configuration;
using Serving.Server.Api;
using Serving.Contracts.Generation;

namespace Serving.Server.Requests;

/// <summary>Reads the sampling fields shared by completions and chat (OpenAI names plus vLLM's extensions).</summary>
internal static class SamplingRequestReader
{
    public const int DefaultMaxTokens = 16;

    /// <summary>
    /// <paramref name="defaultMaxTokens"/> null means "up to the context limit": MaxTokens is then 0 until
    /// <see cref="PromptLimits.Apply"/> fills it in for the tokenized prompt.
    /// </summary>
    public static SamplingParams Read(JsonFields f, GenerationDefaults defaults, int? logprobs, int? defaultMaxTokens)
    {
        f.Int("n", 1, 1);
        f.Int("best_of", 1, 1);
        int? maxTokens = f.Int("max_tokens", 1, 1_000_000) ?? f.Int("max_completion_tokens", 1, 1_000_000);
        int topK = f.Int("top_k", -1, 1_000_000) ?? defaults.TopK ?? 0;
        return new SamplingParams
        {
            Temperature = f.Double("temperature", 0, 2) ?? defaults.Temperature ?? 1.0,
            TopP = f.Double("top_p", double.Epsilon, 1) ?? defaults.TopP ?? 1.0,
            TopK = topK < 0 ? 0 : topK,
            Seed = f.Seed("seed"),
            MaxTokens = maxTokens ?? defaultMaxTokens ?? 0,
            StopStrings = f.StringOrList("stop", 16),
            StopTokenIds = f.IntList("stop_token_ids"),
            IgnoreEos = f.Bool("ignore_eos") ?? false,
            Logprobs = logprobs,
        };
    }
}
