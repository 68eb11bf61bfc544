using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Serving.AdapterStore.Peft;

/// <summary>
/// The LoRA fields of a PEFT <c>adapter_config.json</c>, with PEFT's matching rules. Features the engine cannot run
/// faithfully (bias training, modules_to_save, non-"layers" layer patterns) are rejected, never ignored.
/// </summary>
internal sealed class PeftLoraConfig
{
    public const string FileName = "adapter_config.json";

    public required int Rank { get; init; }
    public required double Alpha { get; init; }
    public bool UseRsLora { get; init; }

    /// <summary>PEFT's <c>use_dora</c>: every adapted module carries a magnitude vector (<c>lora_magnitude_vector</c>).</summary>
    public bool UseDora { get; init; }
    public bool FanInFanOut { get; init; }
    public IReadOnlyList<string>? TargetModuleNames { get; init; }

    /// <summary>PEFT's <c>"all-linear"</c>: every linear projection of the decoder layers.</summary>
    public bool AllLinear { get; init; }

    /// <summary>PEFT's <c>target_parameters</c>: parameters adapted directly (gpt-oss's stacked experts), matched by name suffix.</summary>
    public IReadOnlyList<string> TargetParameters { get; init; } = [];
    public Regex? TargetModuleRegex { get; init; }
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();
    public IReadOnlySet<int>? LayersToTransform { get; init; }
    public string? BaseModel { get; init; }

    /// <summary>PEFT's target check on a module's full name (e.g. <c>model.layers.3.self_attn.q_proj</c>).</summary>
    public bool Targets(string fullName, int layer)
    {
        if (LayersToTransform is not null && !LayersToTransform.Contains(layer))
            return false;
        if (AllLinear)
            return true;
        if (TargetModuleRegex is not null)
            return TargetModuleRegex.IsMatch(fullName);
        return TargetModuleNames!.Any(t => fullName == t || fullName.EndsWith("." + t, StringComparison.Ordinal));
    }

    /// <summary>PEFT's check of a parameter's full name (e.g. <c>model.layers.7.mlp.experts.gate_up_proj</c>) against <c>target_parameters</c>.</summary>
    public bool TargetsParameter(string fullName, int layer) =>
        (LayersToTransform is null || LayersToTransform.Contains(layer))
        && TargetParameters.Any(t => fullName == t || fullName.EndsWith("." + t, StringComparison.Ordinal));

    /// <summary>Rank and alpha for a module, honouring rank_pattern / alpha_pattern (PEFT: first key matching <c>(.*\.)?key$</c>).</summary>
    public (int Rank, double Alpha) For(string fullName) =>
        (Lookup(RankPattern, fullName) ?? Rank, Lookup(AlphaPattern, fullName) ?? Alpha);

    public double Scale(int rank, double alpha) => UseRsLora ? alpha / Math.Sqrt(rank) : alpha / rank;

    private static T? Lookup<T>(IReadOnlyDictionary<string, T> patterns, string fullName) where T : struct
    {
        foreach (var (key, value) in patterns)
            if (Regex.IsMatch(fullName, "^(?:.*\\.)?" + key + "$", RegexOptions.CultureInvariant))
                return value;
        return null;
    }

    public static PeftLoraConfig Parse(string json, string adapter)
    {
        try
        {
            return ParseChecked(json, adapter);
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or ArgumentException or OverflowException)
        {
            // A field of an unexpected JSON kind, or a pattern that is not a valid regex.
            throw Fail(adapter, null, $"has a malformed field: {ex.Message}");
        }
    }

    private static PeftLoraConfig ParseChecked(string json, string adapter)
    {
        JsonObject o;
        try
        {
            o = JsonNode.Parse(json) as JsonObject ?? throw Fail(adapter, null, "must be a JSON object");
        }
        catch (JsonException ex)
        {
            // The exception's text quotes the offending character: for a file that is not a PEFT config, a byte of it.
            throw Fail(adapter, null, $"is not valid JSON (line {(ex.LineNumber ?? 0) + 1}, byte {(ex.BytePositionInLine ?? 0) + 1})");
        }

        string peftType = Str(o, "peft_type", adapter) ?? throw Fail(adapter, "peft_type", "is missing");
        if (peftType != "LORA")
            throw Fail(adapter, "peft_type", $"is '{peftType}'; only LORA adapters are supported");
        int rank = Int(o, "r", adapter) ?? throw Fail(adapter, "r", "is missing");
        if (rank < 1)
            throw Fail(adapter, "r", $"must be positive, got {rank}");
        string bias = Str(o, "bias", adapter) ?? "none";
        if (bias != "none")
            throw Fail(adapter, "bias", $"is '{bias}'; adapters that train biases are not supported (bias must be \"none\")");
        if (o["modules_to_save"] is JsonArray { Count: > 0 } saved)
            throw Fail(adapter, "modules_to_save", $"lists {saved.ToJsonString()}; adapters that replace whole layers are not supported");
        if (o["layers_pattern"] is JsonNode pattern && !(pattern is JsonValue v && v.TryGetValue<string>(out var single) && single == "layers")
            && !(pattern is JsonArray a && a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out var one) && one == "layers")))
            throw Fail(adapter, "layers_pattern", $"is {pattern.ToJsonString()}; only \"layers\" (Llama-family models) is supported");

        IReadOnlyList<string>? names = null;
        Regex? regex = null;
        bool allLinear = false;
        string[] parameters = o["target_parameters"] switch
        {
            null => [],
            JsonArray list when list.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)) => list.Select(x => x!.GetValue<string>()).ToArray(),
            _ => throw Fail(adapter, "target_parameters", "must be a list of parameter names"),
        };
        switch (o["target_modules"])
        {
            case JsonValue s when s.TryGetValue<string>(out var text) && text == "all-linear":
                allLinear = true;
                break;
            case JsonValue s when s.TryGetValue<string>(out var text):
                regex = new Regex("^(?:" + text + ")$", RegexOptions.CultureInvariant);
                break;
            case JsonArray list when list.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)):
                names = list.Select(x => x!.GetValue<string>()).ToArray();
                break;
            case null when parameters.Length > 0:
                names = [];
                break;
            case null:
                throw Fail(adapter, "target_modules", "is missing");
            default:
                throw Fail(adapter, "target_modules", "must be a list of module names or a regex string");
        }

        var config = new PeftLoraConfig
        {
            Rank = rank,
            Alpha = Num(o, "lora_alpha", adapter) ?? 8,
            UseRsLora = Bool(o, "use_rslora", adapter) ?? false,
            UseDora = Bool(o, "use_dora", adapter) ?? false,
            FanInFanOut = Bool(o, "fan_in_fan_out", adapter) ?? false,
            TargetModuleNames = names,
            TargetModuleRegex = regex,
            AllLinear = allLinear,
            TargetParameters = parameters,
            RankPattern = Map(o, "rank_pattern", adapter, n => n.GetValue<int>()),
            AlphaPattern = Map(o, "alpha_pattern", adapter, n => n.GetValue<double>()),
            LayersToTransform = o["layers_to_transform"] switch
            {
                null => null,
                JsonValue one => new HashSet<int> { one.GetValue<int>() },
                JsonArray many => many.Select(x => x is JsonValue v ? v.GetValue<int>() : throw Fail(adapter, "layers_to_transform", "must list integers")).ToHashSet(),
                _ => throw Fail(adapter, "layers_to_transform", "must be an integer or a list of integers"),
            },
            BaseModel = Str(o, "base_model_name_or_path", adapter),
        };
        foreach (string key in config.RankPattern.Keys.Concat(config.AlphaPattern.Keys))
            _ = new Regex("^(?:.*\\.)?" + key + "$", RegexOptions.CultureInvariant);   // reject invalid patterns now, not per request
        return config;
    }

    private static Dictionary<string, T> Map<T>(JsonObject o, string field, string adapter, Func<JsonNode, T> read)
    {
        if (o[field] is null)
            return [];
        if (o[field] is not JsonObject map)
            throw Fail(adapter, field, "must be an object");
        try
        {
            return map.ToDictionary(kv => kv.Key, kv => kv.Value is null ? throw Fail(adapter, field, $"has a null value for '{kv.Key}'") : read(kv.Value));
        }
        catch (Exception ex) when (ex is FormatException or InvalidOperationException)
        {
            throw Fail(adapter, field, "has a value of the wrong type");
        }
    }

    private static string? Str(JsonObject o, string f, string adapter) => Get(o, f, adapter, n => n.GetValue<string>());
    private static int? Int(JsonObject o, string f, string adapter) => Get<int?>(o, f, adapter, n => n.GetValue<int>());
    private static double? Num(JsonObject o, string f, string adapter) => Get<double?>(o, f, adapter, n => n.GetValue<double>());
    private static bool? Bool(JsonObject o, string f, string adapter) => Get<bool?>(o, f, adapter, n => n.GetValue<bool>());

    private static T? Get<T>(JsonObject o, string field, string adapter, Func<JsonNode, T> read)
    {
        if (o[field] is not JsonNode node)
            return default;
        try
        {
            return read(node);
        }
        catch (Exception ex) when (ex is FormatException or InvalidOperationException)
        {
            throw Fail(adapter, field, $"has the wrong type ({node.ToJsonString()})");
        }
    }

    private static AdapterFormatException Fail(string adapter, string? field, string rule) =>
        new(adapter, FileName, field is null ? null : $"field '{field}'", rule);
}
