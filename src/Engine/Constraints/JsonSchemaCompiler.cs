using System.Text.Json;

namespace Serving.Engine.Constraints;

/// <summary>
/// Compiles a JSON Schema to the automaton of its compact JSON texts. Supported: <c>type</c> (one or a list), object
/// (<c>properties</c> in declared order, <c>required</c>, <c>additionalProperties</c>), array (<c>items</c>,
/// <c>prefixItems</c> tuples, drafts 4–7's <c>items</c> arrays with <c>additionalItems</c>, <c>minItems</c>, <c>maxItems</c>), string (<c>enum</c>, <c>const</c>, <c>pattern</c>, <c>minLength</c>,
/// <c>maxLength</c>, <c>format</c> date / time / date-time / uuid), integer and number (<c>minimum</c>, <c>maximum</c>,
/// exclusive forms), boolean, null, <c>anyOf</c>, <c>oneOf</c> (when its branches provably exclude each other),
/// <c>$ref</c> into <c>$defs</c>/<c>definitions</c> (a recursive one a call of the definition's machine, so it nests
/// without a bound), and annotations. Every other keyword is a <see cref="ConstraintException"/> naming it and its JSON path.
/// </summary>
/// <remarks>Generated objects carry only declared properties, in declared order; a schema without <c>properties</c> that
/// allows any object, and <c>{}</c> or <c>true</c>, produce any JSON value, nested without a bound (one machine of any JSON
/// value, called where a value nests).</remarks>
internal sealed class JsonSchemaCompiler
{
    public const int MaxStringLength = 10_000;
    public const int MaxArrayItems = 1_000;

    private readonly ByteNfa _nfa;
    private readonly JsonTextFragments _text;
    private readonly JsonElement _root;
    private List<string> _expanding = [];
    private readonly Dictionary<string, int> _definitions = new(StringComparer.Ordinal);
    private int? _anyValue;
    private readonly RegexNode? _whitespace;

    private JsonSchemaCompiler(ByteNfa nfa, JsonElement root, RegexNode? whitespace)
    {
        _nfa = nfa;
        _text = new JsonTextFragments(nfa);
        _root = root;
        _whitespace = whitespace;
    }

    /// <summary>
    /// The fragment of every JSON text valid against <paramref name="schema"/> that this compiler generates: compact, or
    /// with <paramref name="whitespace"/> (a pattern of JSON whitespace) after every <c>{ [ , :</c> and before every
    /// <c>, : } ]</c>.
    /// </summary>
    public static NfaFragment Compile(ByteNfa nfa, JsonElement schema, RegexNode? whitespace = null) =>
        new JsonSchemaCompiler(nfa, schema, whitespace).Value(schema, "$");

    /// <summary>Any JSON object, as <c>json_object</c> needs.</summary>
    public static NfaFragment AnyObject(ByteNfa nfa, RegexNode? whitespace = null) => new JsonSchemaCompiler(nfa, default, whitespace).GenericObject();

    /// <summary>Characters a whitespace pattern may produce: JSON's four (space, tab, line feed, carriage return).</summary>
    public static CodePointSet JsonWhitespace { get; } = CodePointSet.Of([(' ', ' '), ('\t', '\t'), ('\n', '\n'), ('\r', '\r')]);

    /// <summary>A structural character with the whitespace pattern where JSON allows it (inside the structure only).</summary>
    private NfaFragment Punctuation(string mark)
    {
        if (_whitespace is null)
            return _nfa.Literal(mark);
        NfaFragment Space() => _whitespace.Build(_nfa, set => _nfa.Chars(set.Intersect(JsonWhitespace)));
        return mark switch
        {
            "{" or "[" => _nfa.Sequence(_nfa.Literal(mark), Space()),
            "}" or "]" => _nfa.Sequence(Space(), _nfa.Literal(mark)),
            _ => _nfa.Sequence(Space(), _nfa.Literal(mark), Space()),
        };
    }

    private NfaFragment Value(JsonElement schema, string path)
    {
        if (schema.ValueKind == JsonValueKind.True)
            return Generic();
        if (schema.ValueKind == JsonValueKind.False)
            return NfaFragment.Never;
        if (schema.ValueKind != JsonValueKind.Object)
            throw new ConstraintException(path, "a schema must be an object or a boolean");
        var keywords = JsonSchemaKeywords.Of(schema, path);
        if (schema.TryGetProperty("$ref", out var reference))
            return Reference(reference, keywords, path);
        if (schema.TryGetProperty("allOf", out var allOf))
        {
            // Pydantic writes a described model field as {"allOf": [{"$ref": …}], "description": …}: one schema, as itself.
            if (allOf.ValueKind != JsonValueKind.Array || allOf.GetArrayLength() != 1 || keywords.Count > 1)
                throw new ConstraintException($"{path}.allOf", "only \"allOf\" of exactly one schema, with no other keywords beside it, is supported");
            return Value(allOf[0], $"{path}.allOf[0]");
        }

        if (schema.TryGetProperty("anyOf", out var anyOf) || schema.TryGetProperty("oneOf", out anyOf))
            return Branches(schema, anyOf, keywords, path);
        if (schema.TryGetProperty("enum", out var values) || schema.TryGetProperty("const", out values))
            return Enumeration(schema, values, keywords, path);

        var types = JsonSchemaKeywords.Types(schema, keywords, path);
        return _nfa.Alternation(types.Select(t => Typed(schema, t, path)).ToList());
    }

    private NfaFragment Reference(JsonElement reference, HashSet<string> keywords, string path)
    {
        if (keywords.Count > 1)
            throw new ConstraintException($"{path}.$ref", $"\"$ref\" beside other keywords ({string.Join(", ", keywords.Where(k => k != "$ref"))}) is not supported");
        string target = reference.ValueKind == JsonValueKind.String ? reference.GetString()! : throw new ConstraintException($"{path}.$ref", "must be a string");
        if (_expanding.Contains(target))
            return _nfa.Call(Definition(target, path));
        var resolved = Resolve(target, $"{path}.$ref");
        _expanding.Add(target);
        try
        {
            return Value(resolved, target);
        }
        finally
        {
            _expanding.RemoveAt(_expanding.Count - 1);
        }
    }

    /// <summary>
    /// The machine of the definition <paramref name="target"/> refers to, for a reference inside its own expansion: built
    /// on first use with only itself being expanded, so its own references call it.
    /// </summary>
    private int Definition(string target, string path)
    {
        if (_definitions.TryGetValue(target, out int machine))
            return machine;
        machine = _nfa.NewMachine();
        _definitions[target] = machine;
        var around = _expanding;
        _expanding = [target];
        try
        {
            _nfa.DefineMachine(machine, Value(Resolve(target, $"{path}.$ref"), target));
        }
        finally
        {
            _expanding = around;
        }

        return machine;
    }

    private JsonElement Resolve(string target, string path)
    {
        if (target == "#")
            return _root;
        if (!target.StartsWith("#/", StringComparison.Ordinal))
            throw new ConstraintException(path, $"only local references (\"#/$defs/...\") are supported, not \"{target}\"");
        var at = _root;
        foreach (string raw in target[2..].Split('/'))
        {
            string segment = Uri.UnescapeDataString(raw).Replace("~1", "/").Replace("~0", "~");
            if (at.ValueKind != JsonValueKind.Object || !at.TryGetProperty(segment, out at))
                throw new ConstraintException(path, $"reference \"{target}\" does not resolve");
        }

        return at;
    }

    private NfaFragment Branches(JsonElement schema, JsonElement branches, HashSet<string> keywords, string path)
    {
        string keyword = schema.TryGetProperty("anyOf", out _) ? "anyOf" : "oneOf";
        if (keywords.Count > 1)
            throw new ConstraintException($"{path}.{keyword}", $"\"{keyword}\" beside other keywords ({string.Join(", ", keywords.Where(k => k != keyword))}) is not supported; move them into each branch");
        if (branches.ValueKind != JsonValueKind.Array || branches.GetArrayLength() == 0)
            throw new ConstraintException($"{path}.{keyword}", "must be a non-empty array of schemas");
        var list = branches.EnumerateArray().ToList();
        if (keyword == "oneOf")
            new JsonSchemaKinds(Resolve).RequireDisjoint(list, $"{path}.oneOf");
        return _nfa.Alternation(list.Select((b, i) => Value(b, $"{path}.{keyword}[{i}]")).ToList());
    }

    private NfaFragment Enumeration(JsonElement schema, JsonElement values, HashSet<string> keywords, string path)
    {
        bool isConst = !schema.TryGetProperty("enum", out _);
        string keyword = isConst ? "const" : "enum";
        var extra = keywords.Where(k => k != keyword && k != "type").ToList();
        if (extra.Count > 0)
            throw new ConstraintException($"{path}.{extra[0]}", $"\"{extra[0]}\" beside \"{keyword}\" is not supported");
        var list = isConst ? [values] : values.ValueKind == JsonValueKind.Array ? values.EnumerateArray().ToList()
            : throw new ConstraintException($"{path}.enum", "must be an array");
        if (list.Count == 0)
            throw new ConstraintException($"{path}.enum", "must not be empty");
        var types = schema.TryGetProperty("type", out _) ? JsonSchemaKeywords.Types(schema, keywords, path) : JsonSchemaKeywords.AllTypes;
        var allowed = list.Where(v => types.Contains(JsonSchemaKinds.TypeOf(v)) || JsonSchemaKinds.TypeOf(v) == "integer" && types.Contains("number")).ToList();
        if (allowed.Count == 0)
            throw new ConstraintException($"{path}.{keyword}", "no value is of the schema's type");
        return _nfa.Alternation(allowed.Select(_text.Literal).ToList());
    }

    private NfaFragment Typed(JsonElement schema, string type, string path) => type switch
    {
        "object" => Object(schema, path),
        "array" => Array(schema, path),
        "string" => String(schema, path),
        "integer" => JsonSchemaNumbers.Numeric(_text, schema, path, integer: true),
        "number" => JsonSchemaNumbers.Numeric(_text, schema, path, integer: false),
        "boolean" => _nfa.Alternation(_nfa.Literal("true"), _nfa.Literal("false")),
        "null" => _nfa.Literal("null"),
        _ => Generic(),
    };

    private NfaFragment Object(JsonElement schema, string path)
    {
        var properties = new List<(string Name, JsonElement Schema)>();
        if (schema.TryGetProperty("properties", out var declared))
        {
            if (declared.ValueKind != JsonValueKind.Object)
                throw new ConstraintException($"{path}.properties", "must be an object");
            properties.AddRange(declared.EnumerateObject().Select(p => (p.Name, p.Value)));
        }

        var required = new HashSet<string>();
        if (schema.TryGetProperty("required", out var names))
        {
            if (names.ValueKind != JsonValueKind.Array || names.EnumerateArray().Any(n => n.ValueKind != JsonValueKind.String))
                throw new ConstraintException($"{path}.required", "must be an array of property names");
            foreach (var entry in names.EnumerateArray())
            {
                string name = entry.GetString()!;
                required.Add(name);
                if (properties.All(p => p.Name != name))
                    properties.Add((name, JsonDocument.Parse("true").RootElement));    // required but undeclared: any value
            }
        }

        schema.TryGetProperty("additionalProperties", out var additional);
        if (properties.Count == 0)
        {
            if (additional.ValueKind == JsonValueKind.False)
                return _nfa.Sequence(Punctuation("{"), Punctuation("}"));
            if (additional.ValueKind == JsonValueKind.Object)
                return Map(additional, $"{path}.additionalProperties");
            return GenericObject();
        }

        // none[k] / some[k]: before property k with no property written yet / with one written (so k needs a comma).
        // A property's value is built once; both ways in meet at some[k + 1].
        var open = Punctuation("{");
        int n = properties.Count;
        var none = new int[n + 1];
        var some = new int[n + 1];
        for (int k = 0; k <= n; k++)
        {
            none[k] = _nfa.NewState();
            some[k] = _nfa.NewState();
        }

        _nfa.Epsilon(open.End, none[0]);
        for (int k = 0; k < n; k++)
        {
            var (name, propertySchema) = properties[k];
            bool isRequired = required.Contains(name);
            var member = _nfa.Sequence(_nfa.Sequence(_nfa.Literal(JsonTextFragments.Serialize(JsonSerializer.SerializeToElement(name))), Punctuation(":")),
                Value(propertySchema, $"{path}.properties.{name}"));
            if (member.IsNever)
            {
                if (isRequired)
                    return NfaFragment.Never;
                _nfa.Epsilon(none[k], none[k + 1]);
                _nfa.Epsilon(some[k], some[k + 1]);
                continue;
            }

            var comma = Punctuation(",");
            _nfa.Epsilon(none[k], member.Start);
            _nfa.Epsilon(some[k], comma.Start);
            _nfa.Epsilon(comma.End, member.Start);
            _nfa.Epsilon(member.End, some[k + 1]);
            if (!isRequired)
            {
                _nfa.Epsilon(none[k], none[k + 1]);
                _nfa.Epsilon(some[k], some[k + 1]);
            }
        }

        var close = Punctuation("}");
        _nfa.Epsilon(none[n], close.Start);
        _nfa.Epsilon(some[n], close.Start);
        return new NfaFragment(open.Start, close.End);
    }

    /// <summary>An object of any keys whose values follow <paramref name="values"/> (<c>additionalProperties</c> as a schema).</summary>
    private NfaFragment Map(JsonElement values, string path)
    {
        NfaFragment Member() => _nfa.Sequence(_text.String(0, null), Punctuation(":"), Value(values, path));
        var members = _nfa.Sequence(Member(), _nfa.Repeat(() => _nfa.Sequence(Punctuation(","), Member()), 0, null));
        return _nfa.Sequence(Punctuation("{"), _nfa.Optional(members), Punctuation("}"));
    }

    private NfaFragment Array(JsonElement schema, string path)
    {
        int min = JsonSchemaNumbers.Count(schema, "minItems", path) ?? 0;
        int? max = JsonSchemaNumbers.Count(schema, "maxItems", path);
        if (max > MaxArrayItems)
            throw new ConstraintException($"{path}.maxItems", $"at most {MaxArrayItems} is supported");
        if (schema.TryGetProperty("uniqueItems", out var unique) && unique.ValueKind == JsonValueKind.True && max is not (0 or 1))
            throw new ConstraintException($"{path}.uniqueItems", "\"uniqueItems\": true is not supported (unless maxItems ≤ 1)");
        var items = schema.TryGetProperty("items", out var i) ? i : JsonDocument.Parse("true").RootElement;
        string itemsPath = $"{path}.items", prefixPath = $"{path}.prefixItems";
        var prefix = JsonDocument.Parse("[]").RootElement;
        if (schema.TryGetProperty("prefixItems", out var prefixItems))                   // 2020-12: a tuple, then items
            prefix = prefixItems.ValueKind == JsonValueKind.Array ? prefixItems : throw new ConstraintException(prefixPath, "must be an array of schemas");
        else if (items.ValueKind == JsonValueKind.Array)                                    // drafts 4–7: items a tuple, then additionalItems
        {
            (prefix, prefixPath) = (items, itemsPath);
            items = schema.TryGetProperty("additionalItems", out var additional) ? additional : JsonDocument.Parse("true").RootElement;
            itemsPath = $"{path}.additionalItems";
        }

        return _nfa.Sequence(Punctuation("["), Elements(prefix, prefixPath, 0, min, max, () => Value(items, itemsPath)), Punctuation("]"));
    }

    /// <summary>
    /// An array's elements from position <paramref name="k"/> on: the tuple's schemas (<paramref name="prefix"/>) in turn,
    /// then any number of <paramref name="item"/>'s; the array may end at any position from <paramref name="min"/> on and
    /// ends by <paramref name="max"/>.
    /// </summary>
    private NfaFragment Elements(JsonElement prefix, string path, int k, int min, int? max, Func<NfaFragment> item)
    {
        if (k >= max)
            return _nfa.Empty();
        NfaFragment Next() => _nfa.Sequence(Punctuation(","), item());
        if (k == prefix.GetArrayLength())
        {
            int required = Math.Max(min - k, 0);
            if (k > 0)
                return _nfa.Repeat(Next, required, max - k);
            var first = item();
            if (first.IsNever)
                return required == 0 ? _nfa.Empty() : NfaFragment.Never;
            var elements = _nfa.Sequence(first, _nfa.Repeat(Next, Math.Max(required - 1, 0), max - 1));
            return required == 0 ? _nfa.Optional(elements) : elements;
        }

        var here = _nfa.Sequence(k == 0 ? _nfa.Empty() : Punctuation(","), Value(prefix[k], $"{path}[{k}]"), Elements(prefix, path, k + 1, min, max, item));
        return k >= min ? _nfa.Optional(here) : here;
    }

    private NfaFragment String(JsonElement schema, string path)
    {
        int? min = JsonSchemaNumbers.Count(schema, "minLength", path), max = JsonSchemaNumbers.Count(schema, "maxLength", path);
        if (max > MaxStringLength)
            throw new ConstraintException($"{path}.maxLength", $"at most {MaxStringLength} is supported");
        bool hasPattern = schema.TryGetProperty("pattern", out var pattern), hasFormat = schema.TryGetProperty("format", out var format);
        if ((hasPattern || hasFormat) && (min is not null || max is not null))
            throw new ConstraintException($"{path}.{(min is not null ? "minLength" : "maxLength")}", $"length limits beside \"{(hasPattern ? "pattern" : "format")}\" are not supported");
        if (hasPattern && hasFormat)
            throw new ConstraintException($"{path}.format", "\"format\" beside \"pattern\" is not supported");
        if (hasFormat)
        {
            string name = format.ValueKind == JsonValueKind.String ? format.GetString()! : throw new ConstraintException($"{path}.format", "must be a string");
            return _text.Format(name) ?? throw new ConstraintException($"{path}.format", $"format \"{name}\" is not supported (supported: date, time, date-time, duration, email, hostname, ipv4, ipv6, uuid)");
        }

        if (hasPattern)
        {
            if (pattern.ValueKind != JsonValueKind.String)
                throw new ConstraintException($"{path}.pattern", "must be a string");
            return _text.String(RegexParser.Parse(pattern.GetString()!, $"{path}.pattern"));
        }

        return _text.String(min ?? 0, max);
    }

    /// <summary>Any JSON value: a call of the one machine of them, so values nest in values without a bound.</summary>
    private NfaFragment Generic()
    {
        if (_anyValue is not int machine)
        {
            machine = _nfa.NewMachine();
            _anyValue = machine;
            var elements = _nfa.Sequence(Generic(), _nfa.Repeat(() => _nfa.Sequence(Punctuation(","), Generic()), 0, null));
            _nfa.DefineMachine(machine, _nfa.Alternation(_text.String(0, null), _text.Number(null, null), _nfa.Literal("true"), _nfa.Literal("false"),
                _nfa.Literal("null"), GenericObject(), _nfa.Sequence(Punctuation("["), _nfa.Optional(elements), Punctuation("]"))));
        }

        return _nfa.Call(machine);
    }

    private NfaFragment GenericObject()
    {
        NfaFragment Member() => _nfa.Sequence(_text.String(0, null), Punctuation(":"), Generic());
        var members = _nfa.Sequence(Member(), _nfa.Repeat(() => _nfa.Sequence(Punctuation(","), Member()), 0, null));
        return _nfa.Sequence(Punctuation("{"), _nfa.Optional(members), Punctuation("}"));
    }
}
