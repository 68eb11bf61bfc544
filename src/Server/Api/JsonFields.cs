using System.Text.Json;

namespace Serving.Server.Api;

/// <summary>Typed reads of optional request fields; a field of the wrong type or range is a 400 naming the field.</summary>
internal sealed class JsonFields(JsonElement root)
{
    public JsonElement Root { get; } = root;

    public bool Has(string name) => Get(name) is not null;

    public string? String(string name) => Get(name) is { } v
        ? v.ValueKind == JsonValueKind.String ? v.GetString() : throw Bad(name, "must be a string")
        : null;

    public bool? Bool(string name) => Get(name) is { } v
        ? v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw Bad(name, "must be a boolean")
        : null;

    public int? Int(string name, int min, int max)
    {
        if (Get(name) is not { } v)
            return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x))
            throw Bad(name, "must be an integer");
        if (x < min || x > max)
            throw Bad(name, $"must be in [{min}, {max}], got {x}");
        return (int)x;
    }

    public double? Double(string name, double min, double max)
    {
        if (Get(name) is not { } v)
            return null;
        if (v.ValueKind != JsonValueKind.Number)
            throw Bad(name, "must be a number");
        double x = v.GetDouble();
        if (double.IsNaN(x) || x < min || x > max)
            throw Bad(name, $"must be in [{min}, {max}], got {x}");
        return x;
    }

    public ulong? Seed(string name)
    {
        if (Get(name) is not { } v)
            return null;
        if (v.ValueKind != JsonValueKind.Number)
            throw Bad(name, "must be an integer");
        if (v.TryGetInt64(out long signed))
            return unchecked((ulong)signed);
        if (v.TryGetUInt64(out ulong unsigned))
            return unchecked(unsigned);
        throw Bad(name, "must be a 64-bit integer");
    }

    /// <summary>A string or a list of strings (OpenAI's <c>stop</c>).</summary>
    public IReadOnlyList<string> StringOrList(string name, int maxCount)
    {
        if (Get(name) is not { } v)
            return [];
        if (v.ValueKind == JsonValueKind.String)
            return [v.GetString()!];
        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
            throw Bad(name, "must be a string or a list of strings");
        var list = v.EnumerateArray().Select(e => e.GetString()!).ToList();
        if (list.Count > maxCount)
            throw Bad(name, $"may hold at most {maxCount} entries");
        if (list.Any(s => s.Length == 0))
            throw Bad(name, "must not contain empty strings");
        return list;
    }

    public IReadOnlyList<int> IntList(string name, int maxCount)
    {
        if (Get(name) is not { } v)
            return [];
        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out _)))
            throw Bad(name, "must be a list of integers");
        if (v.GetArrayLength() > maxCount)
            throw Bad(name, $"may hold at most {maxCount} entries");
        return v.EnumerateArray().Select(e => e.GetInt32()).ToList();
    }

    /// <summary>
    /// OpenAI's <c>logit_bias</c>: an object from token ids (as strings) to biases in [<paramref name="min"/>,
    /// <paramref name="max"/>], at most <paramref name="maxCount"/> of them. Whether each id is in the vocabulary is the
    /// caller's check.
    /// </summary>
    public IReadOnlyDictionary<int, float> TokenBiases(string name, int maxCount, double min, double max)
    {
        if (Get(name) is not { } v)
            return new Dictionary<int, float>();
        if (v.ValueKind != JsonValueKind.Object)
            throw Bad(name, "must be an object from token ids to biases");
        var biases = new Dictionary<int, float>();
        foreach (var entry in v.EnumerateObject())
        {
            if (biases.Count == maxCount)
                throw Bad(name, $"may hold at most {maxCount} entries");
            if (!int.TryParse(entry.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int token))
                throw Bad(name, "keys must be token ids (non-negative integers)");
            if (entry.Value.ValueKind != JsonValueKind.Number || entry.Value.GetDouble() is var bias && !(bias >= min && bias <= max))
                throw Bad(name, $"values must be numbers in [{min}, {max}] (token {token})");
            biases[token] = (float)bias;
        }

        return biases;
    }

    public JsonElement? Get(string name) =>
        Root.ValueKind == JsonValueKind.Object && Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    /// <summary>A nested object's fields (e.g. <c>stream_options</c>); null when absent, 400 when not an object.</summary>
    public JsonFields? Object(string name) => Get(name) is { } v
        ? v.ValueKind == JsonValueKind.Object ? new JsonFields(v) : throw Bad(name, "must be an object")
        : null;

    public static ApiException Bad(string name, string problem) => ApiException.BadRequest($"'{name}' {problem}", name);
}
