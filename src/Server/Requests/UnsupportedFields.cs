using System.Text.Json;
using Serving.Server.Api;

namespace Serving.Server.Requests;

/// <summary>
/// Request fields of OpenAI's and vLLM's APIs that would change the output and that this server does not implement: a
/// 400 naming the field, never a silent default. A field may still carry null, and most may carry the value that asks
/// for nothing (false, 0, an empty list), as clients that send every field do; <c>modalities</c> may list <c>"text"</c>.
/// </summary>
internal static class UnsupportedFields
{
    private sealed record Field(string Name, string Why, Func<JsonElement, bool>? Asks = null);

    private static readonly Field[] Completions = [new("suffix", "is not supported")];

    private static readonly Field[] Chat =
    [
        new("functions", "is not supported (use tools)"),
        new("function_call", "is not supported (use tools)"),
        new("audio", "is not supported (text only)"),
        new("modalities", "may only be [\"text\"]", v => v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(m => m.ValueKind != JsonValueKind.String || m.GetString() != "text")),
    ];

    private static readonly Field[] Both =
    [
        new("logits_processors", "is not supported"),
    ];

    /// <summary>Throws a 400 for the first such field present with a value that asks for something.</summary>
    public static void Refuse(JsonFields f, bool chat)
    {
        foreach (var field in (chat ? Chat : Completions).Concat(Both))
            if (f.Get(field.Name) is { } v && (field.Asks ?? AsksForSomething)(v))
                throw JsonFields.Bad(field.Name, field.Why);
    }

    private static bool AsksForSomething(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.False => false,
        JsonValueKind.Number => !(v.TryGetDouble(out double d) && d == 0),
        JsonValueKind.Array => v.GetArrayLength() > 0,
        _ => true,
    };
}
