using System.Text.Json;

namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// One entry of a chat request's <c>tools</c>: <c>{"type": "function", "function": {"name", "description",
/// "parameters"}}</c>, read as vLLM's request model reads it (a name is required; <c>parameters</c>, when given, is a
/// JSON Schema object; other fields pass to the template untouched).
/// </summary>
internal sealed record FunctionTool(string Name, JsonElement? Parameters)
{
    /// <summary>Longest function name accepted; OpenAI's own limit is 64.</summary>
    public const int MaxNameLength = 256;

    /// <summary>The request's <c>tools</c>, empty when absent; a malformed entry is a 400 naming its path.</summary>
    public static IReadOnlyList<FunctionTool> ReadAll(JsonFields f)
    {
        if (f.Get("tools") is not { } tools)
            return [];
        if (tools.ValueKind != JsonValueKind.Array)
            throw JsonFields.Bad("tools", "must be a list of tool definitions");
        var list = new List<FunctionTool>();
        int i = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            string at = $"tools[{i++}]";
            if (tool.ValueKind != JsonValueKind.Object)
                throw JsonFields.Bad(at, "must be an object like {\"type\": \"function\", \"function\": {\"name\": ...}}");
            var tf = new JsonFields(tool);
            if (tf.Get("type") is { } type && (type.ValueKind != JsonValueKind.String || type.GetString() != "function"))
                throw JsonFields.Bad($"{at}.type", "must be 'function'");
            var function = tf.Get("function") is { ValueKind: JsonValueKind.Object } fn ? new JsonFields(fn)
                : throw JsonFields.Bad($"{at}.function", "must be an object with a 'name'");
            string name = function.Get("name") is { ValueKind: JsonValueKind.String } n ? n.GetString()! : throw JsonFields.Bad($"{at}.function.name", "must be a string");
            if (name.Length is 0 or > MaxNameLength)
                throw JsonFields.Bad($"{at}.function.name", $"must be 1 to {MaxNameLength} characters");
            var parameters = function.Get("parameters");
            if (parameters is { ValueKind: not JsonValueKind.Object })
                throw JsonFields.Bad($"{at}.function.parameters", "must be a JSON Schema object");
            list.Add(new FunctionTool(name, parameters));
        }

        return list;
    }
}
