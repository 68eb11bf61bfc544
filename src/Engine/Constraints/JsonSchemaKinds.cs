using System.Text.Json;

namespace Serving.Engine.Constraints;

/// <summary>
/// Proves that <c>oneOf</c> branches exclude each other, so any value generated from one branch fails all the others, as
/// <c>oneOf</c> requires. Two branches are disjoint when their JSON types cannot meet (an integer is also a number), when
/// both are literal sets (<c>enum</c>/<c>const</c>) with no common value, or when both are objects requiring a common
/// property whose literal sets are disjoint (a discriminator such as <c>"kind": {"const": "dose"}</c>). Anything else
/// is refused rather than risked.
/// </summary>
internal sealed class JsonSchemaKinds(Func<string, string, JsonElement> resolve)
{
    /// <summary>The JSON Schema type of a literal value ("integer" for integral numbers).</summary>
    public static string TypeOf(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => value.TryGetInt64(out _) || value.GetDouble() == Math.Floor(value.GetDouble()) ? "integer" : "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => "null",
    };

    public void RequireDisjoint(IReadOnlyList<JsonElement> branches, string path)
    {
        for (int i = 0; i < branches.Count; i++)
            for (int j = i + 1; j < branches.Count; j++)
                if (!Disjoint(Follow(branches[i]), Follow(branches[j])))
                    throw new ConstraintException(path, $"branches {i} and {j} may both match one value, so \"oneOf\" cannot be guaranteed; use \"anyOf\", or give them different types or a required \"const\" discriminator property");
    }

    private JsonElement Follow(JsonElement schema)
    {
        for (int hops = 0; hops < 16 && schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty("$ref", out var r) && r.ValueKind == JsonValueKind.String; hops++)
            schema = resolve(r.GetString()!, "$ref");
        return schema;
    }

    private bool Disjoint(JsonElement a, JsonElement b)
    {
        var ta = Types(a);
        var tb = Types(b);
        if (ta is not null && tb is not null && !ta.Overlaps(tb))
            return true;
        var la = Literals(a);
        var lb = Literals(b);
        if (la is not null && lb is not null)
            return !la.Overlaps(lb);
        if (ta is not null && tb is not null && ta.SetEquals(["object"]) && tb.SetEquals(["object"]))
            return Discriminated(a, b);
        return false;
    }

    /// <summary>The types a schema's values may have (integer implied by number), or null when it does not say.</summary>
    private HashSet<string>? Types(JsonElement schema)
    {
        if (schema.ValueKind != JsonValueKind.Object)
            return null;
        var literals = Literals(schema);
        if (literals is not null)
        {
            var values = schema.TryGetProperty("enum", out var e) ? e.EnumerateArray().ToList() : [schema.GetProperty("const")];
            return values.Select(TypeOf).SelectMany(t => t == "integer" ? new[] { "integer", "number" } : [t]).ToHashSet();
        }

        if (!schema.TryGetProperty("type", out var type))
            return schema.TryGetProperty("properties", out _) || schema.TryGetProperty("required", out _) ? ["object"] : null;
        var names = type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Select(t => t.GetString() ?? "").ToHashSet() : [type.GetString() ?? ""];
        if (names.Contains("number"))
            names.Add("integer");
        if (names.Contains("integer"))
            names.Add("number");
        return names;
    }

    /// <summary>The compact texts of an enum/const schema's values, or null when it is not one.</summary>
    private static HashSet<string>? Literals(JsonElement schema)
    {
        if (schema.ValueKind != JsonValueKind.Object)
            return null;
        if (schema.TryGetProperty("const", out var c))
            return [Canonical(c)];
        if (schema.TryGetProperty("enum", out var e) && e.ValueKind == JsonValueKind.Array)
            return e.EnumerateArray().Select(Canonical).ToHashSet();
        return null;
    }

    /// <summary>Numbers compare by value (1 and 1.0 are the same to a validator); everything else by compact text.</summary>
    private static string Canonical(JsonElement value) =>
        value.ValueKind == JsonValueKind.Number ? value.GetDouble().ToString("R", System.Globalization.CultureInfo.InvariantCulture) : JsonTextFragments.Serialize(value);

    private bool Discriminated(JsonElement a, JsonElement b)
    {
        if (!a.TryGetProperty("properties", out var pa) || !b.TryGetProperty("properties", out var pb))
            return false;
        var requiredA = Required(a);
        var requiredB = Required(b);
        foreach (var property in pa.EnumerateObject())
        {
            if (!requiredA.Contains(property.Name) || !requiredB.Contains(property.Name) || !pb.TryGetProperty(property.Name, out var other))
                continue;
            var la = Literals(Follow(property.Value));
            var lb = Literals(Follow(other));
            if (la is not null && lb is not null && !la.Overlaps(lb))
                return true;
        }

        return false;
    }

    private static HashSet<string> Required(JsonElement schema) =>
        schema.TryGetProperty("required", out var r) && r.ValueKind == JsonValueKind.Array
            ? r.EnumerateArray().Where(n => n.ValueKind == JsonValueKind.String).Select(n => n.GetString()!).ToHashSet()
            : [];
}
