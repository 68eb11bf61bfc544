using System.Text.Json;
using Serving.Server.Api;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// OpenAI's <c>prompt</c> (and the embeddings' <c>input</c>): a string, a list of strings, a list of token ids, or a list of
/// such lists. Strings are tokenized with the model's special tokens (BOS where the tokenizer adds one); token ids are used
/// exactly as given.
/// </summary>
internal static class CompletionPromptReader
{
    public const int MaxPrompts = 64;

    /// <param name="f">The request's fields.</param>
    /// <param name="tokenize">A prompt string's token ids (the request stage's, which refuses one past the context early).</param>
    /// <param name="field">The field holding the prompts.</param>
    /// <param name="maxPrompts">How many prompts it may hold.</param>
    public static IReadOnlyList<IReadOnlyList<int>> Read(JsonFields f, Func<string, int[]> tokenize, string field = "prompt", int maxPrompts = MaxPrompts)
    {
        if (f.Get(field) is not { } p)
            throw JsonFields.Bad(field, "is required");
        // Counted before any prompt is tokenized: a list of many long strings must not be tokenized to be refused.
        if (p.ValueKind == JsonValueKind.Array && p.GetArrayLength() > maxPrompts && p.EnumerateArray().All(e => e.ValueKind is JsonValueKind.String or JsonValueKind.Array))
            throw JsonFields.Bad(field, $"may hold at most {maxPrompts} prompts");
        var prompts = new List<IReadOnlyList<int>>();
        switch (p.ValueKind)
        {
            case JsonValueKind.String:
                prompts.Add(tokenize(p.GetString()!));
                break;
            case JsonValueKind.Array when p.GetArrayLength() == 0:
                throw JsonFields.Bad(field, "must not be an empty list");
            case JsonValueKind.Array when p.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number):
                prompts.Add(TokenIds(p, field));
                break;
            case JsonValueKind.Array when p.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String):
                prompts.AddRange(p.EnumerateArray().Select(e => (IReadOnlyList<int>)tokenize(e.GetString()!)));
                break;
            case JsonValueKind.Array when p.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Array):
                prompts.AddRange(p.EnumerateArray().Select(e => TokenIds(e, field)));
                break;
            default:
                throw JsonFields.Bad(field, "must be a string, a list of strings, a list of token ids or a list of token-id lists");
        }

        return prompts;
    }

    /// <summary>
    /// Each prompt's text as sent (for <c>echo</c>): the string of a string prompt, null for one given as token ids. Only
    /// for a request <see cref="Read"/> accepted.
    /// </summary>
    public static IReadOnlyList<string?> Texts(JsonFields f) => f.Get("prompt") switch
    {
        { ValueKind: JsonValueKind.String } text => [text.GetString()],
        { ValueKind: JsonValueKind.Array } list when list.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) =>
            list.EnumerateArray().Select(e => e.GetString()).ToList(),
        { ValueKind: JsonValueKind.Array } list when list.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number) => [null],
        { ValueKind: JsonValueKind.Array } list => list.EnumerateArray().Select(_ => (string?)null).ToList(),
        _ => [],
    };

    private static IReadOnlyList<int> TokenIds(JsonElement list, string field)
    {
        var ids = new List<int>();
        foreach (var e in list.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int id))
                throw JsonFields.Bad(field, "token ids must be integers");
            ids.Add(id);
        }

        return ids;
    }
}
