using Serving.Server.Api;
using Serving.Contracts.Generation;

namespace Serving.Server.Requests;

internal static class PromptLimits
{
    /// <summary>
    /// Checks the sampling parameters' token ids (logit_bias, allowed_token_ids) against the vocabulary, once per request;
    /// returns them with allowed_token_ids without repeats.
    /// </summary>
    public static SamplingParams CheckTokenIds(SamplingParams sampling, int vocabSize)
    {
        foreach (int id in sampling.LogitBias.Keys)
            if (id >= vocabSize)
                throw ApiException.BadRequest($"'logit_bias' token id {id} is outside the vocabulary [0, {vocabSize})", "logit_bias");
        if (sampling.AllowedTokenIds is not { } allowed)
            return sampling;
        foreach (int id in allowed)
            if (id >= vocabSize)
                throw ApiException.BadRequest($"'allowed_token_ids' token id {id} is outside the vocabulary [0, {vocabSize})", "allowed_token_ids");
        // Each entry is a read on every step of the sequence: a million repeats of one id must cost what one does.
        return allowed.Count > 1 ? sampling with { AllowedTokenIds = allowed.Distinct().ToArray() } : sampling;
    }

    /// <summary>
    /// Checks one tokenized prompt against the vocabulary and the context limit; returns the sampling params to run it
    /// with (a max_tokens of 0 becomes what the context leaves, and any is cut to <paramref name="maxNewTokens"/>, as vLLM
    /// cuts it to a generation config's <c>max_new_tokens</c>). A problem of the prompt itself names <paramref name="field"/>.
    /// </summary>
    public static SamplingParams Apply(IReadOnlyList<int> prompt, SamplingParams sampling, int maxContext, int vocabSize, string field = "prompt", int? maxNewTokens = null)
    {
        if (prompt.Count == 0)
            throw ApiException.BadRequest("the prompt is empty", field);
        foreach (int id in prompt)
            if ((uint)id >= (uint)vocabSize)
                throw ApiException.BadRequest($"token id {id} is outside the vocabulary [0, {vocabSize})", field);
        if (prompt.Count >= maxContext)
            throw ApiException.BadRequest($"This model's maximum context length is {maxContext} tokens; the prompt has {prompt.Count}.", field);
        if (sampling.MaxTokens == 0)
            sampling = sampling with { MaxTokens = maxContext - prompt.Count };
        // long: prompt + a max_tokens near int.MaxValue (gRPC accepts any int32) must not wrap around below the limit.
        if ((long)prompt.Count + sampling.MaxTokens > maxContext)
            throw ApiException.BadRequest(
                $"This model's maximum context length is {maxContext} tokens. However, you requested {(long)prompt.Count + sampling.MaxTokens} tokens ({prompt.Count} in the prompt, {sampling.MaxTokens} for the completion).",
                "max_tokens");
        if (sampling.MaxTokens > maxNewTokens)
            sampling = sampling with { MaxTokens = maxNewTokens.Value };
        if (sampling.MinTokens > sampling.MaxTokens)
            throw ApiException.BadRequest($"'min_tokens' {sampling.MinTokens} is more than the {sampling.MaxTokens} tokens this request may generate", "min_tokens");
        return sampling;
    }
}
