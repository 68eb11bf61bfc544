namespace Serving.Runtime.Speculation;

/// <summary>
/// <c>Serving:Speculation</c>: speculative decoding without a draft model. A decode step of a few rows reads every weight
/// once whatever its rows, so verifying a few proposed tokens with the row costs little more than the row alone, and each
/// accepted draft is a token without a step of its own. Drafts come from a request's predicted output (OpenAI's
/// <c>prediction</c>) and, with <see cref="Method"/> <see cref="SpeculationMethod.Ngram"/>, from the sequence itself. What a
/// request generates never depends on them.
/// </summary>
public sealed class SpeculationOptions
{
    public const string Section = "Serving:Speculation";

    /// <summary>Drafts for every request (besides predicted outputs): <c>None</c> (default), <c>Ngram</c> or <c>Suffix</c>.</summary>
    public SpeculationMethod Method { get; set; } = SpeculationMethod.None;

    /// <summary>Draft tokens verified per step and sequence (vLLM's <c>num_speculative_tokens</c>); 0 turns speculation off, predictions included.</summary>
    public int Tokens { get; set; } = 7;

    /// <summary>Shortest run of the sequence's last tokens looked up (vLLM's <c>prompt_lookup_min</c>); a predicted output is looked up from 1.</summary>
    public int PromptLookupMin { get; set; } = 2;

    /// <summary>Longest run looked up (vLLM's <c>prompt_lookup_max</c>); longer matches are tried first.</summary>
    public int PromptLookupMax { get; set; } = 4;

    /// <summary>
    /// Most rows a decode step may have with its drafts: the running sequences' rows plus every draft. The drafting sequences
    /// share what is left evenly (at most <see cref="Tokens"/> each), so one stream drafts fully, a few share, and a batch of
    /// this many sequences or more drafts nothing (vLLM's <c>disable_by_batch_size</c>, by rows). Why 8 (and 7 drafts): on
    /// the CPUs measured a decode step of up to 8 rows costs about what one row does (the weights' read), and rows past 8
    /// cost compute (bench preset, bf16, Zen 4: 7.8 ms at 1 row, 8.5 at 8, 11.5 at 12, 14.3 at 16; docs/benchmarks/speculation.md).
    /// A GPU, where a step's cost is its launches, can take far more.
    /// </summary>
    public int MaxStepRows { get; set; } = 8;

    /// <summary>
    /// Tokens of earlier outputs kept for <see cref="SpeculationMethod.Suffix"/> over all tenants (oldest out first; about
    /// 40 bytes a token with its index).
    /// </summary>
    public long HistoryTokens { get; set; } = 262_144;

    /// <summary>Longest predicted output accepted, in tokens (a longer one is a 400).</summary>
    public int MaxPredictionTokens { get; set; } = 32_768;

    /// <summary>
    /// Drafts each of <paramref name="drafting"/> sequences may carry in a step of <paramref name="running"/> sequences:
    /// what <see cref="MaxStepRows"/> leaves beyond the sequences' own rows, shared evenly, at most <see cref="Tokens"/>.
    /// </summary>
    public int DraftsPerSequence(int running, int drafting) =>
        drafting <= 0 ? 0 : Math.Min(Tokens, Math.Max(0, MaxStepRows - running) / drafting);

    public IEnumerable<string> Validate()
    {
        if (!Enum.IsDefined(Method))
            yield return "Serving:Speculation:Method must be none, ngram or suffix";
        if (Tokens is < 0 or > 16)
            yield return "Serving:Speculation:Tokens must be within 0..16";
        if (PromptLookupMin < 1 || PromptLookupMax < PromptLookupMin || PromptLookupMax > 64)
            yield return "Serving:Speculation:PromptLookupMin and PromptLookupMax must satisfy 1 ≤ min ≤ max ≤ 64";
        if (MaxStepRows is < 2 or > 1024)
            yield return "Serving:Speculation:MaxStepRows must be within 2..1024";
        if (HistoryTokens is < 0 or > 1L << 30)
            yield return "Serving:Speculation:HistoryTokens must be within 0..1073741824";
        if (MaxPredictionTokens < 1)
            yield return "Serving:Speculation:MaxPredictionTokens must be ≥ 1";
    }
}
