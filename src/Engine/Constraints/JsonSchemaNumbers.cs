using System.Text.Json;

namespace Serving.Engine.Constraints;

/// <summary>
/// Reads a schema's numeric keywords — bounds as inclusive integers, counts as non-negative ints, <c>multipleOf</c> — or a
/// <see cref="ConstraintException"/> naming the keyword; and an integer or number schema's fragment from them.
/// </summary>
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

    /// <summary>
    /// An integer or number schema's fragment: its bounds (rounded inward to integers) and <c>multipleOf</c> (decimal
    /// places with any bounds; else listed multiples, or a remainder automaton, <see cref="JsonTextFragments.Multiples"/>).
    /// </summary>
    public static NfaFragment Numeric(JsonTextFragments text, JsonElement schema, string path, bool integer)
    {
        long? lo = Bound(schema, "minimum", path, up: true, exclusive: false);
        long? hi = Bound(schema, "maximum", path, up: false, exclusive: false);
        if (Bound(schema, "exclusiveMinimum", path, up: true, exclusive: true) is long xlo)
            lo = lo is null ? xlo : Math.Max(lo.Value, xlo);
        if (Bound(schema, "exclusiveMaximum", path, up: false, exclusive: true) is long xhi)
            hi = hi is null ? xhi : Math.Min(hi.Value, xhi);
        if (lo > hi)
            throw new ConstraintException(path, $"no {(integer ? "integer" : "number")} lies between the bounds");
        if (MultipleOf(schema, path) is not (long a, int d))
            return integer ? text.Integer(lo, hi) : text.Number(lo, hi);
        if (integer)
            (a, d) = (a / (long)System.Numerics.BigInteger.GreatestCommonDivisor(a, System.Numerics.BigInteger.Pow(10, d)), 0);   // n·10^d ≡ 0 (mod a)
        if (a == 1)
            return text.Number(lo, hi, fractionDigits: d);                           // every decimal of at most d fraction digits
        var multiples = text.Multiples(a, d, lo, hi)
            ?? throw new ConstraintException($"{path}.multipleOf", $"beside bounds holding more than {JsonTextFragments.MaxListedMultiples:N0} multiples, or a multiple of more than {JsonTextFragments.MaxRemainders:N0} units of its last digit, is not supported");
        return multiples.IsNever ? throw new ConstraintException(path, $"no multiple of {schema.GetProperty("multipleOf")} lies between the bounds") : multiples;
    }
}
