using System.Text.Json;

namespace Serving.Engine.Constraints;

/// <summary>Reads a schema's numeric keywords: bounds as inclusive integers, counts as non-negative ints, or a <see cref="ConstraintException"/> naming the keyword.</summary>
internal static class JsonSchemaNumbers
{
    /// <summary>A bound as an inclusive integer, rounded inward (a fractional bound keeps the integers inside it).</summary>
    public static long? Bound(JsonElement schema, string keyword, string path, bool up, bool exclusive)
    {
        if (!schema.TryGetProperty(keyword, out var value))
            return null;
        if (value.ValueKind != JsonValueKind.Number)
            throw new ConstraintException($"{path}.{keyword}", "must be a number");
        double v = Math.Clamp(value.GetDouble(), -JsonTextFragments.MaxMagnitude, JsonTextFragments.MaxMagnitude);
        double rounded = up ? Math.Ceiling(v) : Math.Floor(v);
        if (exclusive && rounded == v)
            rounded += up ? 1 : -1;
        return (long)rounded;
    }

    public static int? Count(JsonElement schema, string keyword, string path)
    {
        if (!schema.TryGetProperty(keyword, out var value))
            return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int n) || n < 0)
            throw new ConstraintException($"{path}.{keyword}", "must be a non-negative integer");
        return n;
    }
}
