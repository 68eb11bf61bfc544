using System.Text.Json.Nodes;

namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>The JSON Schemas that force tool calls (<see cref="ToolChoice.Constraint"/>).</summary>
internal static class ToolCallSchemas
{
    /// <summary>OpenAI's reading of a function without <c>parameters</c>: it takes none.</summary>
    private const string NoParameters = """{"type":"object","properties":{},"additionalProperties":false}""";

    /// <summary>The schema of <paramref name="tool"/>'s arguments.</summary>
    public static string Arguments(FunctionTool tool) => tool.Parameters?.GetRawText() ?? NoParameters;

    /// <summary>
    /// A list of calls, <c>[{"name": N, "parameters": P}, ...]</c>, at least one (exactly one without
    /// <paramref name="parallel"/>), each name a listed function's with that function's schema. Each function's schema
    /// moves under <c>$defs/tool{i}</c> with its local references (<c>#/...</c>) re-rooted there, so functions that
    /// define the same <c>$defs</c> names keep their own.
    /// </summary>
    public static string CallList(IReadOnlyList<FunctionTool> tools, bool parallel)
    {
        var definitions = new JsonObject();
        var branches = new JsonArray();
        for (int i = 0; i < tools.Count; i++)
        {
            string key = $"tool{i}";
            definitions[key] = Reroot(JsonNode.Parse(Arguments(tools[i]))!, $"#/$defs/{key}");
            branches.Add(new JsonObject
            {
                ["type"] = "object",
                ["properties"] = new JsonObject
                {
                    ["name"] = new JsonObject { ["const"] = tools[i].Name },
                    ["parameters"] = new JsonObject { ["$ref"] = $"#/$defs/{key}" },
                },
                ["required"] = new JsonArray("name", "parameters"),
                ["additionalProperties"] = false,
            });
        }

        var schema = new JsonObject
        {
            ["type"] = "array",
            ["minItems"] = 1,
            ["items"] = new JsonObject { ["anyOf"] = branches },
            ["$defs"] = definitions,
        };
        if (!parallel)
            schema["maxItems"] = 1;
        return schema.ToJsonString();
    }

    /// <summary>Keywords whose values are JSON data, not schemas: a <c>$ref</c> inside one is text.</summary>
    private static readonly HashSet<string> Literals = ["const", "enum", "default", "examples"];

    /// <summary>Rewrites every local <c>$ref</c> in <paramref name="node"/> to resolve under <paramref name="root"/>.</summary>
    private static JsonNode Reroot(JsonNode node, string root)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (name, value) in o.ToList())
                {
                    if (name == "$ref" && value is JsonValue v && v.TryGetValue(out string? target) && target.StartsWith('#'))
                        o[name] = root + target[1..];
                    else if (value is not null && !Literals.Contains(name))
                        Reroot(value, root);
                }

                break;
            case JsonArray a:
                foreach (var item in a)
                    if (item is not null)
                        Reroot(item, root);
                break;
        }

        return node;
    }
}
