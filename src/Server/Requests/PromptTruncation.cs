using Serving.Server.Api;

namespace Serving.Server.Requests;

/// <summary>
/// vLLM's <c>truncate_prompt_tokens</c>: a prompt keeps only its last <see cref="Keep"/> tokens (the tokenizer's own
/// special tokens stay, as transformers' left truncation keeps them); <c>-1</c> keeps as many as leave room for
/// <c>max_tokens</c>. Text is tokenized whole to find its tail, so a request may tokenize at most
/// <see cref="MaxTokenizedTokens"/> tokens of prompt in all (about a millisecond per thousand): a longer text is a 400
/// before the rest of it is read.
/// </summary>
internal sealed class PromptTruncation
{
    private const string Field = "truncate_prompt_tokens";
    private int _budget;

    private PromptTruncation(int keep, int budget) => (Keep, _budget) = (keep, budget);

    /// <summary>Tokens a prompt keeps at most.</summary>
    public int Keep { get; }

    /// <summary>Prompt tokens one request may have tokenized to be truncated: 16 contexts, within [64 Ki, 1 Mi].</summary>
    public static int MaxTokenizedTokens(int maxContext) => (int)Math.Clamp(16L * maxContext, 65_536, 1 << 20);

    /// <summary>The request's truncation, or null when it asks for none.</summary>
    /// <param name="f">The body.</param>
    /// <param name="maxContext">The served context.</param>
    /// <param name="maxTokens">The request's <c>max_tokens</c>; 0 when it gives none (chat then fills the context).</param>
    public static PromptTruncation? Read(JsonFields f, int maxContext, int maxTokens) => Create(f.Int(Field, -1, int.MaxValue), maxContext, maxTokens);

    /// <summary><see cref="Read"/>'s check of a value given otherwise (gRPC); any value below -1 is a 400 too.</summary>
    public static PromptTruncation? Create(int? truncatePromptTokens, int maxContext, int maxTokens)
    {
        if (truncatePromptTokens is not int keep)
            return null;
        if (keep < -1)
            throw JsonFields.Bad(Field, $"must be in [-1, {int.MaxValue}], got {keep}");
        if (keep == 0)
            throw JsonFields.Bad(Field, "must be -1 (what the context leaves beside max_tokens) or at least 1");
        if (keep > maxContext)
            throw JsonFields.Bad(Field, $"is {keep}, more than this model's maximum context length {maxContext}");
        if (keep == -1)
        {
            if (maxTokens <= 0)
                throw JsonFields.Bad(Field, "-1 needs max_tokens, to know how much of the context to leave for the output");
            if (maxTokens >= maxContext)
                throw JsonFields.Bad(Field, $"-1 leaves no room for a prompt: max_tokens {maxTokens} fills the context {maxContext}");
            keep = maxContext - maxTokens;
        }

        return new PromptTruncation(keep, MaxTokenizedTokens(maxContext));
    }

    /// <summary>A token-id prompt's last <see cref="Keep"/> ids.</summary>
    public IReadOnlyList<int> Apply(IReadOnlyList<int> ids) => ids.Count <= Keep ? ids : ids.Skip(ids.Count - Keep).ToArray();

    /// <summary>A text prompt's last tokens, charging what it took to the request's budget; a 400 naming <paramref name="field"/> past it.</summary>
    /// <exception cref="Runtime.Hosting.PromptTextException">The tokenizer refused the text.</exception>
    public int[] Tokenize(Runtime.Hosting.ServedModel model, string text, bool addSpecialTokens, string field)
    {
        var ids = model.EncodeKeepingLast(text, addSpecialTokens, Keep, _budget, out int textTokens)
            ?? throw ApiException.BadRequest($"'truncate_prompt_tokens' tokenizes a prompt whole to keep its end; this request's prompts are more than {_budget} tokens", field);
        _budget -= textTokens;
        return ids;
    }
}
