using System.Text.Json;

namespace Serving.Engine.Constraints;

/// <summary>
/// xgrammar's structural tag, as vLLM takes it (<c>structural_tag</c>): free text, except that where a trigger appears
/// the text must go on as one of the structures — its <c>begin</c>, JSON valid against its <c>schema</c>, its
/// <c>end</c> — after which free text resumes. So a model may write prose and tool calls in its own syntax, and every call
/// it starts is held to its function's schema. The language: free text containing no trigger, then any number of
/// (structure, free text). Spec: <c>{"type": "structural_tag", "structures": [{"begin", "schema", "end"}], "triggers"}</c>;
/// every structure's <c>begin</c> starts with one of the triggers.
/// </summary>
internal static class StructuralTagCompiler
{
    private const string Where = "structural_tag";
    public const int MaxStructures = 64, MaxTriggers = 16;

    public static NfaFragment Compile(ByteNfa nfa, string spec, RegexNode? whitespace)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(spec, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            throw new ConstraintException(Where, $"is not valid JSON: {ex.Message}");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new ConstraintException(Where, "must be an object with 'structures' and 'triggers'");
            if (root.TryGetProperty("type", out var type) && !(type.ValueKind == JsonValueKind.String && type.GetString() == "structural_tag"))
                throw new ConstraintException($"{Where}.type", "must be \"structural_tag\"");
            var triggers = Strings(root, "triggers", MaxTriggers);
            if (!root.TryGetProperty("structures", out var list) || list.ValueKind != JsonValueKind.Array || list.GetArrayLength() is 0 or > MaxStructures)
                throw new ConstraintException($"{Where}.structures", $"must be a list of 1 to {MaxStructures} structures");
            var structures = new List<NfaFragment>();
            int i = 0;
            foreach (var structure in list.EnumerateArray())
            {
                string at = $"{Where}.structures[{i++}]";
                if (structure.ValueKind != JsonValueKind.Object)
                    throw new ConstraintException(at, "must be an object with 'begin', 'schema' and 'end'");
                string begin = Text(structure, "begin", at), end = Text(structure, "end", at);
                if (!triggers.Any(t => begin.StartsWith(t, StringComparison.Ordinal)))
                    throw new ConstraintException($"{at}.begin", "must start with one of the triggers");
                if (!structure.TryGetProperty("schema", out var schema))
                    throw new ConstraintException($"{at}.schema", "is required");
                NfaFragment json;
                try
                {
                    json = JsonSchemaCompiler.Compile(nfa, schema, whitespace);
                }
                catch (ConstraintException ex) when (ex.Path.StartsWith('$'))
                {
                    throw new ConstraintException($"{at}.schema{ex.Path[1..]}", ex.Problem);
                }

                structures.Add(nfa.Sequence(nfa.Literal(begin), json, nfa.Literal(end)));
            }

            var markers = triggers.Select(System.Text.Encoding.UTF8.GetBytes).ToList();
            return nfa.Sequence(nfa.Avoiding(markers), nfa.Repeat(() => nfa.Sequence(nfa.Alternation(structures), nfa.Avoiding(markers)), 0, null));
        }
    }

    private static string Text(JsonElement owner, string name, string at) =>
        owner.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text ? text
            : throw new ConstraintException($"{at}.{name}", "must be a non-empty string");

    private static List<string> Strings(JsonElement owner, string name, int max)
    {
        if (!owner.TryGetProperty(name, out var list) || list.ValueKind != JsonValueKind.Array || list.GetArrayLength() is 0 || list.GetArrayLength() > max
            || list.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String || e.GetString() is not { Length: > 0 }))
            throw new ConstraintException($"{Where}.{name}", $"must be a list of 1 to {max} non-empty strings");
        return list.EnumerateArray().Select(e => e.GetString()!).ToList();
    }
}
