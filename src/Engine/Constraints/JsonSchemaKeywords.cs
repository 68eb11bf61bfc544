using System.Text.Json;

namespace Serving.Engine.Constraints;

/// <summary>The JSON Schema keywords <see cref="JsonSchemaCompiler"/> reads, and the types a schema's keywords mean.</summary>
internal static class JsonSchemaKeywords
{
    private static readonly HashSet<string> Annotations = ["title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
        "readOnly", "writeOnly", "$defs", "definitions", "$anchor"];

    private static readonly HashSet<string> Supported = ["type", "properties", "required", "additionalProperties", "items", "prefixItems", "additionalItems", "minItems", "maxItems",
        "enum", "const", "pattern", "minLength", "maxLength", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "anyOf", "oneOf",
        "$ref", "allOf", "uniqueItems"];

    public static readonly string[] AllTypes = ["object", "array", "string", "number", "integer", "boolean", "null"];

    /// <summary>The schema's keywords other than annotations; a keyword outside the supported set throws naming its path.</summary>
    public static HashSet<string> Of(JsonElement schema, string path)
    {
        foreach (var p in schema.EnumerateObject())
        {
            if (Annotations.Contains(p.Name) || Supported.Contains(p.Name))
                continue;
            throw new ConstraintException($"{path}.{p.Name}", $"keyword \"{p.Name}\" is not supported");
        }

        return schema.EnumerateObject().Select(p => p.Name).Where(n => !Annotations.Contains(n)).ToHashSet();
    }

    /// <summary>The JSON types a schema allows: its <c>type</c>, else inferred from its keywords ("any" when none tells).</summary>
    public static string[] Types(JsonElement schema, HashSet<string> keywords, string path)
    {
        if (schema.TryGetProperty("type", out var type))
        {
            var names = type.ValueKind switch
            {
                JsonValueKind.String => [type.GetString()!],
                JsonValueKind.Array when type.GetArrayLength() > 0 && type.EnumerateArray().All(t => t.ValueKind == JsonValueKind.String) =>
                    type.EnumerateArray().Select(t => t.GetString()!).ToArray(),
                _ => throw new ConstraintException($"{path}.type", "must be a type name or a non-empty array of them"),
            };
            foreach (string name in names)
                if (!AllTypes.Contains(name))
                    throw new ConstraintException($"{path}.type", $"unknown type \"{name}\"");
            return names.Contains("number") ? [.. names.Where(n => n != "integer").Distinct()] : [.. names.Distinct()];
        }

        var inferred = new List<string>();
        if (keywords.Overlaps(["properties", "required", "additionalProperties"]))
            inferred.Add("object");
        if (keywords.Overlaps(["items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems"]))
            inferred.Add("array");
        if (keywords.Overlaps(["pattern", "minLength", "maxLength", "format"]))
            inferred.Add("string");
        if (keywords.Overlaps(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"]))
            inferred.Add("number");
        return inferred.Count > 0 ? [.. inferred] : ["any"];
    }
}
