namespace Serving.Contracts.Generation;

/// <summary>
/// How to pick each next token and when to stop. Temperature 0 is greedy. TopK ≤ 0 and TopP = 1 disable those
/// filters. A Seed makes sampling reproducible: the same seed, prompt and parameters give the same tokens.
/// </summary>
public sealed record SamplingParams
{
    public double Temperature { get; init; } = 1.0;
    public int TopK { get; init; }
    public double TopP { get; init; } = 1.0;
    public ulong? Seed { get; init; }
    public int MaxTokens { get; init; } = 16;
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    public bool IgnoreEos { get; init; }

    /// <summary>Structured output: the form the output must take (JSON Schema, regex, choice), or null for free text.</summary>
    public OutputConstraint? Constraint { get; init; }

    /// <summary>Null: no logprobs. N ≥ 0: the sampled token's logprob plus the N most likely alternatives.</summary>
    public int? Logprobs { get; init; }

    /// <summary>
    /// Null: none. N ≥ 0: every prompt token after the first is scored — its logprob given the tokens before it, its rank,
    /// and the N most likely alternatives (vLLM's <c>prompt_logprobs</c>). Such a request computes its whole prompt: it
    /// neither reuses nor leaves prefix-cache blocks.
    /// </summary>
    /// <summary>The most alternatives any server may be set to return per token (<c>--max-logprobs</c>'s bound; its default is 20).</summary>
    public const int MaxLogprobs = 1024;

    public int? PromptLogprobs { get; init; }

    /// <summary>
    /// Whether the first event carries the prompt's embedding (<see cref="TokenEvent.Embedding"/>): its final hidden states
    /// pooled as <see cref="Pooling"/> says. Such a request is run for that.
    /// </summary>
    public bool EmbedPrompt { get; init; }

    /// <summary>How <see cref="EmbedPrompt"/> pools the prompt's final hidden states; by default its last token's.</summary>
    public PromptPooling Pooling { get; init; }

    /// <summary>
    /// Whether the request needs the step outputs of every prompt position (scoring its prompt, or pooling more than its
    /// last token): it computes its whole prompt, neither reusing nor leaving prefix-cache blocks.
    /// </summary>
    public bool NeedsEveryPromptPosition => PromptLogprobs is not null || EmbedPrompt && Pooling != PromptPooling.LastToken;

    /// <summary>Added to these tokens' logits before sampling (OpenAI's <c>logit_bias</c>: −100 bans, +100 all but forces).</summary>
    public IReadOnlyDictionary<int, float> LogitBias { get; init; } = EmptyBias;

    /// <summary>Subtracted once from the logit of every token the output already holds (OpenAI's <c>presence_penalty</c>).</summary>
    public float PresencePenalty { get; init; }

    /// <summary>Subtracted from a token's logit once per time the output already holds it (<c>frequency_penalty</c>).</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>
    /// For every token in the prompt or the output, a positive logit divided by it and a negative one multiplied (HF's and
    /// vLLM's <c>repetition_penalty</c>); 1 leaves logits alone.
    /// </summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>Keeps only tokens whose probability is at least this share of the most likely one's (after temperature); 0: off.</summary>
    public double MinP { get; init; }

    /// <summary>Tokens generated before an end-of-sequence or stop token may be chosen (vLLM's <c>min_tokens</c>).</summary>
    public int MinTokens { get; init; }

    /// <summary>Only these tokens may be chosen (vLLM's <c>allowed_token_ids</c>); null: any.</summary>
    public IReadOnlyList<int>? AllowedTokenIds { get; init; }

    /// <summary>
    /// vLLM's <c>bad_words</c> as token sequences: the last token of a sequence may not be generated right after the
    /// output ends with the ones before it (a one-token sequence is never generated). At most
    /// <see cref="MaxBadWordTokens"/> tokens in all: each is read on every step of the sequence.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<int>> BadWords { get; init; } = [];

    /// <summary>The most tokens <see cref="BadWords"/> may hold together.</summary>
    public const int MaxBadWordTokens = 4096;

    /// <summary>Whether special tokens the model generates are left out of the text (vLLM's <c>skip_special_tokens</c>, default true).</summary>
    public bool SkipSpecialTokens { get; init; } = true;

    /// <summary>Whether the text keeps the stop string that ended it (vLLM's <c>include_stop_str_in_output</c>).</summary>
    public bool IncludeStopStringInOutput { get; init; }

    /// <summary>The most <see cref="LogitBias"/> entries a request may carry: each is work on every step of its sequence.</summary>
    public const int MaxLogitBiasEntries = 1024;

    private static readonly IReadOnlyDictionary<int, float> EmptyBias = new Dictionary<int, float>();

    /// <summary>Whether any logit adjustment (allowed set, bias, penalty, minimum length) applies: sampling then works on a copy of the logits.</summary>
    public bool AdjustsLogits => LogitBias.Count > 0 || Penalizes || MinTokens > 0 || AllowedTokenIds is not null || BadWords.Count > 0;

    /// <summary>Whether a penalty reads the tokens seen so far (presence, frequency or repetition).</summary>
    public bool Penalizes => PresencePenalty != 0 || FrequencyPenalty != 0 || RepetitionPenalty != 1f;

    public void Validate()
    {
        if (double.IsNaN(Temperature) || Temperature < 0 || Temperature > 100)
            throw new ArgumentException("temperature must be in [0, 100]");
        if (double.IsNaN(TopP) || TopP <= 0 || TopP > 1)
            throw new ArgumentException("top_p must be in (0, 1]");
        if (TopK < -1)
            throw new ArgumentException("top_k must be -1, 0 (disabled) or positive");
        if (MaxTokens < 1)
            throw new ArgumentException("max_tokens must be at least 1");
        if (Logprobs is < 0 or > MaxLogprobs)
            throw new ArgumentException($"logprobs must be in [0, {MaxLogprobs}]");
        if (PromptLogprobs is < 0 or > MaxLogprobs)
            throw new ArgumentException($"prompt_logprobs must be in [0, {MaxLogprobs}]");
        if (StopStrings.Any(string.IsNullOrEmpty))
            throw new ArgumentException("stop strings must not be empty");
        if (LogitBias.Count > MaxLogitBiasEntries)
            throw new ArgumentException($"logit_bias may hold at most {MaxLogitBiasEntries} entries");
        foreach (var (token, bias) in LogitBias)
            if (token < 0 || !(bias is >= -100 and <= 100))
                throw new ArgumentException($"logit_bias: token {token} must be a token id with a bias in [-100, 100]");
        if (!(PresencePenalty is >= -2 and <= 2) || !(FrequencyPenalty is >= -2 and <= 2))
            throw new ArgumentException("presence_penalty and frequency_penalty must be in [-2, 2]");
        if (!(RepetitionPenalty is > 0 and <= 100))
            throw new ArgumentException("repetition_penalty must be in (0, 100]");
        if (!(MinP is >= 0 and <= 1))
            throw new ArgumentException("min_p must be in [0, 1]");
        if (MinTokens < 0 || MinTokens > MaxTokens)
            throw new ArgumentException("min_tokens must be in [0, max_tokens]");
        if (AllowedTokenIds is { } allowed && (allowed.Count == 0 || allowed.Any(t => t < 0)))
            throw new ArgumentException("allowed_token_ids must be a non-empty list of token ids");
        if (BadWords.Any(w => w.Count == 0 || w.Any(t => t < 0)) || BadWords.Sum(w => (long)w.Count) > MaxBadWordTokens)
            throw new ArgumentException($"bad_words must be non-empty token sequences, at most {MaxBadWordTokens} tokens in all");
    }
}
