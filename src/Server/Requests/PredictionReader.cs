using System.Text;
using System.Text.Json;
using Serving.Server.Api;

namespace Serving.Server.Requests;

/// <summary>
/// OpenAI's <c>prediction</c> (Predicted Outputs): <c>{"type": "content", "content": text or [{"type": "text", "text": …}]}</c>,
/// the output the client expects (a file it asks to have edited, say). The server drafts from it (speculative decoding): it
/// changes how fast the output comes, never what the output is. Absent, null or empty: no prediction.
/// </summary>
internal static class PredictionReader
{
    /// <summary>The prediction's text, or null; a 400 naming the field that is wrong.</summary>
    public static string? Read(JsonFields f)
    {
        if (f.Get("prediction") is not { } v || v.ValueKind == JsonValueKind.Null)
            return null;
        if (v.ValueKind != JsonValueKind.Object)
            throw JsonFields.Bad("prediction", "must be an object {\"type\": \"content\", \"content\": …}");
        var p = new JsonFields(v);
        if (p.Get("type") is not { ValueKind: JsonValueKind.String } type || type.GetString() != "content")
            throw JsonFields.Bad("prediction.type", "must be \"content\"");
        var content = p.Get("content");
        switch (content?.ValueKind)
        {
            case JsonValueKind.String:
                return content.Value.GetString();
            case JsonValueKind.Array:
                var text = new StringBuilder();
                int i = 0;
                foreach (var part in content.Value.EnumerateArray())
                {
                    if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var kind) || kind.ValueKind != JsonValueKind.String
                        || kind.GetString() != "text" || !part.TryGetProperty("text", out var value) || value.ValueKind != JsonValueKind.String)
                        throw JsonFields.Bad($"prediction.content[{i}]", "must be {\"type\": \"text\", \"text\": string}");
                    text.Append(value.GetString());
                    i++;
                }

                return text.ToString();
            default:
                throw JsonFields.Bad("prediction.content", "must be a string or an array of text parts");
        }
    }
}
