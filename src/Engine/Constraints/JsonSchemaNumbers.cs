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

    /// <summary>
    /// <c>multipleOf</c> as a · 10^−d with a and d the smallest (0.25 → 25, 2; 5 → 5, 0), or null when absent; it must be a
    /// positive number with at most <see cref="JsonTextFragments.MaxDigits"/> fraction digits.
    /// </summary>
    public static (long A, int D)? MultipleOf(JsonElement schema, string path)
    {
        if (!schema.TryGetProperty("multipleOf", out var value))
            return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDecimal(out decimal m) || m <= 0)
            throw new ConstraintException($"{path}.multipleOf", "must be a positive number");
        int d = 0;
        while (decimal.Truncate(m) != m && d <= JsonTextFragments.MaxDigits)
        {
            m *= 10;
            d++;
        }

        if (d > JsonTextFragments.MaxDigits || m > JsonTextFragments.MaxMagnitude)
            throw new ConstraintException($"{path}.multipleOf", $"at most {JsonTextFragments.MaxDigits} digits are supported");
        return ((long)m, d);
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
