using Serving.Contracts.Configuration;
using Serving.Server.Api;
using Serving.Contracts.Generation;

namespace Serving.Server.Requests;

/// <summary>Reads the sampling fields shared by completions and chat (OpenAI names plus vLLM's extensions).</summary>
internal static class SamplingRequestReader
{
    public const int DefaultMaxTokens = 16;

    /// <summary>Most choices one request may ask for (OpenAI's <c>n</c>); with several prompts, their product is bounded too.</summary>
    public const int MaxChoices = 64;

    /// <summary>OpenAI's <c>n</c>: choices per prompt, 1 when absent.</summary>
    public static int ReadChoiceCount(JsonFields f) => f.Int("n", 1, MaxChoices) ?? 1;

    /// <summary>A constrained sequence's step visits every stop token id: a bound on that work, far above any real list.</summary>
    public const int MaxStopTokenIds = 256;

    /// <summary>A bound on <c>allowed_token_ids</c> above any vocabulary served; each id is a read on every step.</summary>
    public const int MaxAllowedTokenIds = 1 << 20;

    private static IReadOnlyList<int> NonEmpty(string name, IReadOnlyList<int> ids) =>
        ids.Count > 0 && ids.All(id => id >= 0) ? ids : throw JsonFields.Bad(name, "must be a non-empty list of token ids");

    /// <summary>
    /// <paramref name="defaultMaxTokens"/> null means "up to the context limit": MaxTokens is then 0 until
    /// <see cref="PromptLimits.Apply"/> fills it in for the tokenized prompt.
    /// </summary>
    public static SamplingParams Read(JsonFields f, GenerationDefaults defaults, int? logprobs, int? defaultMaxTokens)
    {
        // vLLM's spaces_between_special_tokens changes only its slow (Python) tokenizers' output, never a tokenizer.json
        // one's, which is what this server runs: accepted as a boolean and, as in vLLM, of no effect here.
        f.Bool("spaces_between_special_tokens");
        ReadChoiceCount(f);
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
            StopTokenIds = f.IntList("stop_token_ids", MaxStopTokenIds),
            IgnoreEos = f.Bool("ignore_eos") ?? false,
            Logprobs = logprobs,
            LogitBias = f.TokenBiases("logit_bias", SamplingParams.MaxLogitBiasEntries, -100, 100),
            PresencePenalty = (float)(f.Double("presence_penalty", -2, 2) ?? 0),
            FrequencyPenalty = (float)(f.Double("frequency_penalty", -2, 2) ?? 0),
            RepetitionPenalty = (float)(f.Double("repetition_penalty", double.Epsilon, 100) ?? defaults.RepetitionPenalty ?? 1),
            MinP = f.Double("min_p", 0, 1) ?? defaults.MinP ?? 0,
            MinTokens = f.Int("min_tokens", 0, 1_000_000) ?? 0,          // against max_tokens in PromptLimits, once it is known
            AllowedTokenIds = f.Has("allowed_token_ids") ? NonEmpty("allowed_token_ids", f.IntList("allowed_token_ids", MaxAllowedTokenIds)) : null,
            SkipSpecialTokens = f.Bool("skip_special_tokens") ?? true,
            IncludeStopStringInOutput = f.Bool("include_stop_str_in_output") ?? false,
        };
    }
}
