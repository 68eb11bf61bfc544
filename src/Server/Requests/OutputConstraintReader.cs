using System.Text.Json;
using Serving.Contracts.Generation;
using Serving.Server.Api;

namespace Serving.Server.Requests;

/// <summary>
/// Reads a request's structured-output options into one <see cref="OutputConstraint"/>: OpenAI's <c>response_format</c>
/// (<c>json_schema</c>, <c>json_object</c>, <c>text</c>), vLLM's <c>structured_outputs</c> (<c>json</c>, <c>regex</c>,
/// <c>choice</c>, <c>grammar</c>, <c>json_object</c>) and vLLM's older <c>guided_json</c> / <c>guided_regex</c> /
/// <c>guided_choice</c> / <c>guided_grammar</c>.
/// At most one may be given, with vLLM's whitespace options for JSON. Returns the request field the constraint came from,
/// so compile errors can name the full path.
/// </summary>
internal static class OutputConstraintReader
{
    public const int MaxChoices = 1_000;

    private static readonly HashSet<string> StructuredOutputKeys = ["json", "regex", "choice", "json_object", "grammar", "structural_tag",
        "disable_any_whitespace", "disable_fallback", "disable_additional_properties", "whitespace_pattern", "backend"];

    public static (OutputConstraint Constraint, string Field)? Read(JsonFields f)
    {
        var found = new List<(OutputConstraint, string)>();
        if (f.Object("response_format") is { } format)
            if (ResponseFormat(format) is { } c)
                found.Add(c);
        if (f.Object("structured_outputs") is { } options)
            found.Add(StructuredOutputs(options));
        if (f.Get("guided_json") is { } json)
            found.Add((Schema(json), "guided_json"));
        if (f.String("guided_regex") is { } regex)
            found.Add((OutputConstraint.Regex(regex), "guided_regex"));
        if (f.Has("guided_choice"))
            found.Add((OutputConstraint.Choice(Choices(f, "guided_choice")), "guided_choice"));
        if (f.Get("guided_grammar") is { } grammar)
            found.Add((Grammar(grammar, "guided_grammar"), "guided_grammar"));
        if (found.Count > 1)
            throw ApiException.BadRequest($"give one output format, not {string.Join(" and ", found.Select(c => $"'{c.Item2}'"))}", found[1].Item2);
        string? whitespace = Whitespace(f);
        if (found.Count == 0)
            return whitespace is null ? null : throw JsonFields.Bad(f.Has("guided_whitespace_pattern") ? "guided_whitespace_pattern" : "structured_outputs", "needs a JSON output format");
        return (found[0].Item1 with { WhitespacePattern = whitespace }, found[0].Item2);
    }

    /// <summary>
    /// vLLM's whitespace options: <c>structured_outputs.whitespace_pattern</c> or <c>guided_whitespace_pattern</c> (a regex
    /// of JSON whitespace written between JSON tokens), or <c>disable_any_whitespace: false</c> (any JSON whitespace, as
    /// xgrammar's default). Absent: compact JSON.
    /// </summary>
    private static string? Whitespace(JsonFields f)
    {
        var options = f.Object("structured_outputs");
        string? pattern = options?.String("whitespace_pattern") ?? f.String("guided_whitespace_pattern");
        if (options?.Get("disable_any_whitespace") is { ValueKind: JsonValueKind.False })
            return pattern is null ? "[ \t\n\r]*" : throw JsonFields.Bad("structured_outputs.disable_any_whitespace", "cannot be false beside a whitespace_pattern");
        return pattern;
    }

    private static (OutputConstraint, string)? ResponseFormat(JsonFields format)
    {
        string type = format.String("type") ?? throw JsonFields.Bad("response_format.type", "is required");
        switch (type)
        {
            case "text":
                return null;
            case "json_object":
                return (OutputConstraint.JsonObject(), "response_format");
            case "structural_tag":
                return (OutputConstraint.StructuralTag(format.Root.GetRawText()), "response_format");
            case "json_schema":
                var spec = format.Get("json_schema") is { ValueKind: JsonValueKind.Object } s ? new JsonFields(s)
                    : throw JsonFields.Bad("response_format.json_schema", "must be an object with a 'schema'");
                if (spec.Get("name") is { } name && (name.ValueKind != JsonValueKind.String || !System.Text.RegularExpressions.Regex.IsMatch(name.GetString()!, "^[A-Za-z0-9_-]{1,64}$")))
                    throw JsonFields.Bad("response_format.json_schema.name", "must be 1 to 64 letters, digits, '_' or '-'");
                if (spec.Get("strict") is { } strict && strict.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                    throw JsonFields.Bad("response_format.json_schema.strict", "must be a boolean");
                var schema = spec.Get("schema") ?? throw JsonFields.Bad("response_format.json_schema.schema", "is required");
                return (Schema(schema), "response_format.json_schema.schema");
            default:
                throw JsonFields.Bad("response_format.type", $"must be 'text', 'json_object', 'json_schema' or 'structural_tag', not '{type}'");
        }
    }

    private static (OutputConstraint, string) StructuredOutputs(JsonFields options)
    {
        foreach (var p in options.Root.EnumerateObject())
            if (!StructuredOutputKeys.Contains(p.Name))
                throw JsonFields.Bad($"structured_outputs.{p.Name}", "is not a structured_outputs option (json, regex, choice, grammar, structural_tag, json_object)");
        var kinds = new List<(OutputConstraint, string)>();
        if (options.Get("json") is { } json)
            kinds.Add((Schema(json), "structured_outputs.json"));
        if (options.Get("regex") is { } regex)
            kinds.Add((OutputConstraint.Regex(regex.ValueKind == JsonValueKind.String ? regex.GetString()! : throw JsonFields.Bad("structured_outputs.regex", "must be a string")),
                "structured_outputs.regex"));
        if (options.Has("choice"))
            kinds.Add((OutputConstraint.Choice(Choices(options, "choice", "structured_outputs.choice")), "structured_outputs.choice"));
        if (options.Get("grammar") is { } grammar)
            kinds.Add((Grammar(grammar, "structured_outputs.grammar"), "structured_outputs.grammar"));
        if (options.Get("structural_tag") is { } tag)
            kinds.Add((OutputConstraint.StructuralTag(tag.ValueKind == JsonValueKind.String ? tag.GetString()! : tag.ValueKind == JsonValueKind.Object ? tag.GetRawText()
                : throw JsonFields.Bad("structured_outputs.structural_tag", "must be an object (or a string holding one)")), "structured_outputs.structural_tag"));
        options.Bool("disable_any_whitespace");
        if (options.Bool("json_object") == true)
            kinds.Add((OutputConstraint.JsonObject(), "structured_outputs.json_object"));
        return kinds.Count switch
        {
            1 => kinds[0],
            0 => throw JsonFields.Bad("structured_outputs", "must name one of json, regex, choice, grammar, structural_tag or json_object"),
            _ => throw JsonFields.Bad("structured_outputs", $"must name exactly one of json, regex, choice, grammar, structural_tag or json_object, not {kinds.Count}"),
        };
    }

    /// <summary>A GBNF grammar: a non-empty string.</summary>
    private static OutputConstraint Grammar(JsonElement value, string field) => value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text
        ? OutputConstraint.Grammar(text)
        : throw JsonFields.Bad(field, "must be a GBNF grammar (a non-empty string)");

    /// <summary>A schema given as JSON, or as a string holding it (vLLM accepts both); the compiler judges what it holds.</summary>
    private static OutputConstraint Schema(JsonElement value) =>
        OutputConstraint.JsonSchema(value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText());

    private static IReadOnlyList<string> Choices(JsonFields f, string name, string? field = null)
    {
        field ??= name;
        var list = f.Get(name) is { ValueKind: JsonValueKind.Array } v && v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String)
            ? v.EnumerateArray().Select(e => e.GetString()!).ToList()
            : throw JsonFields.Bad(field, "must be a list of strings");
        if (list.Count == 0 || list.Count > MaxChoices)
            throw JsonFields.Bad(field, $"must hold 1 to {MaxChoices} strings");
        return list;
    }
}
