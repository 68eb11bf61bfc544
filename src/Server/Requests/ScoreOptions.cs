namespace Serving.Server.Requests;

/// <summary>
/// <c>Serving:Score</c> (<c>--score-tokens NO,YES</c>): serve <c>/score</c> and <c>/rerank</c> from a generative model's
/// logits of two tokens, as vLLM serves Qwen3-Reranker with <c>classifier_from_token: ["no", "yes"]</c>: a pair's score is
/// P(YES) among the two at its last position, <c>σ(z_YES − z_NO)</c>. Unset: the scores are embeddings' cosines.
/// </summary>
public sealed class ScoreOptions
{
    public const string Section = "Serving:Score";

    /// <summary>The negative and the positive token, as tokenizer.json spells them, comma-separated (<c>no,yes</c>); null: none.</summary>
    public string? ClassifierTokens { get; set; }

    /// <summary>The two tokens; empty when unset.</summary>
    public IReadOnlyList<string> Tokens => ClassifierTokens is { Length: > 0 } list ? list.Split(',') : [];

    /// <summary>What is wrong with the setting, if anything.</summary>
    public IEnumerable<string> Validate()
    {
        if (ClassifierTokens is { Length: > 0 } && (Tokens.Count != 2 || Tokens.Any(string.IsNullOrEmpty) || Tokens[0] == Tokens[1]))
            yield return $"{Section}:ClassifierTokens (--score-tokens) must name two different tokens, negative first: NO,YES (got '{ClassifierTokens}')";
    }
}
