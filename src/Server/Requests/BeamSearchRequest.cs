using Serving.Contracts.Generation;
using Serving.Server.Api;

namespace Serving.Server.Requests;

/// <summary>
/// vLLM's <c>use_beam_search</c>: <c>n</c> is the beam width (at most <see cref="MaxWidth"/>, since each step reads the
/// 2·width most likely tokens of every beam and logprobs stop at 20) and <c>length_penalty</c> the exponent of the
/// length the scores are divided by. What would not change a beam search's result, or that it cannot honour, is a 400
/// naming the field rather than silently ignored: logprobs, output formats, logit adjustments, stop strings. Streamed,
/// the beams come when the search ends.
/// </summary>
/// <param name="Width">Beams kept at each step, and choices returned per prompt.</param>
/// <param name="LengthPenalty">A beam's score is its cumulative logprob ÷ its length (prompt + output) ^ this.</param>
internal sealed record BeamSearchRequest(int Width, double LengthPenalty)
{
    public const int MaxWidth = 10;

    /// <summary>The request's beam search, or null when it asks for none (a <c>length_penalty</c> other than 1 then is a 400).</summary>
    /// <param name="f">The body.</param>
    /// <param name="sampling">Its sampling parameters, as read.</param>
    /// <param name="n">Its <c>n</c>.</param>
    /// <param name="alsoRefused">Fields of the front door that beam search cannot honour, present in this request (e.g. <c>echo</c>).</param>
    public static BeamSearchRequest? Read(JsonFields f, SamplingParams sampling, int n, params string[] alsoRefused)
    {
        double penalty = f.Double("length_penalty", -10, 10) ?? 1.0;
        if (f.Bool("use_beam_search") != true)
            return penalty == 1.0 ? null : throw JsonFields.Bad("length_penalty", "scores beams: it needs use_beam_search");
        if (n > MaxWidth)
            throw JsonFields.Bad("n", $"is the beam width with use_beam_search, at most {MaxWidth}; got {n}");
        if (sampling.Logprobs is not null)
            throw Refused("logprobs", "reads every beam's logprobs itself");
        if (sampling.PromptLogprobs is not null)
            throw Refused("prompt_logprobs", "cannot score the prompt");
        if (sampling.Constraint is not null)
            throw Refused("structured_outputs", "cannot hold an output format (response_format, structured_outputs, a forced tool_choice)");
        if (sampling.AdjustsLogits)
            throw Refused("logit_bias", "ranks beams by the model's own logprobs: logit_bias, penalties, min_tokens, allowed_token_ids and bad_words do not apply");
        if (sampling.StopStrings.Count > 0 || sampling.StopTokenIds.Count > 0)
            throw Refused("stop", "ends a beam only at the end-of-sequence token");
        foreach (string field in alsoRefused)
            throw Refused(field, "cannot be combined with it");
        return new BeamSearchRequest(n, penalty);
    }

    private static ApiException Refused(string field, string why) => ApiException.BadRequest($"'use_beam_search' {why} ('{field}')", "use_beam_search");
}
