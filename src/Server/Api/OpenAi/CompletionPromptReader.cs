using System.Text.Json;
using Serving.Runtime.Hosting;
using Serving.Server.Api;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// OpenAI's <c>prompt</c>: a string, a list of strings, a list of token ids, or a list of such lists. Strings are
/// tokenized with the model's special tokens (BOS where the tokenizer adds one); token ids are used exactly as given.
/// </summary>
internal static class CompletionPromptReader
{
    public const int MaxPrompts = 64;

    public static IReadOnlyList<IReadOnlyList<int>> Read(JsonFields f, ServedModel model)
    {
        if (f.Get("prompt") is not { } p)
            throw JsonFields.Bad("prompt", "is required");
        var prompts = new List<IReadOnlyList<int>>();
        switch (p.ValueKind)
        {
            case JsonValueKind.String:
                prompts.Add(model.Encode(p.GetString()!, addSpecialTokens: true));
                break;
            case JsonValueKind.Array when p.GetArrayLength() == 0:
                throw JsonFields.Bad("prompt", "must not be an empty list");
            case JsonValueKind.Array when p.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number):
                prompts.Add(TokenIds(p));
                break;
            case JsonValueKind.Array when p.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String):
                prompts.AddRange(p.EnumerateArray().Select(e => (IReadOnlyList<int>)model.Encode(e.GetString()!, addSpecialTokens: true)));
                break;
            case JsonValueKind.Array when p.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Array):
                prompts.AddRange(p.EnumerateArray().Select(TokenIds));
                break;
            default:
                throw JsonFields.Bad("prompt", "must be a string, a list of strings, a list of token ids or a list of token-id lists");
        }

        if (prompts.Count > MaxPrompts)
            throw JsonFields.Bad("prompt", $"may hold at most {MaxPrompts} prompts");
        return prompts;
    }

    private static IReadOnlyList<int> TokenIds(JsonElement list)
    {
        var ids = new List<int>();
        foreach (var e in list.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int id))
                throw JsonFields.Bad("prompt", "token ids must be integers");
            ids.Add(id);
        }

        return ids;
    }
}
