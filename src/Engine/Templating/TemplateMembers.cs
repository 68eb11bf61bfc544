namespace Serving.Engine.Templating;

/// <summary>
/// <c>obj.name</c>, <c>obj[key]</c> and slices as Jinja2 resolves them (a missing key or attribute is undefined; only
/// touching an undefined value's members is an error), and the Python methods of strings and dicts that chat templates
/// call. Mutating methods (<c>list.append</c> …) are absent, as in transformers' immutable sandbox.
/// </summary>
internal static class TemplateMembers
{
    private static readonly HashSet<string> DictMethods = ["items", "keys", "values", "get"];

    public static object? Attribute(object? target, string name, string described)
    {
        switch (target)
        {
            case Undefined u:
                throw new TemplateException($"'{u.Name}' is undefined (reading '.{name}' of it)");
            case Dictionary<string, object?> map when DictMethods.Contains(name):
                return DictMethod(map, name);
            case Dictionary<string, object?> map:
                return map.TryGetValue(name, out var value) ? value : Undefined.Named($"{described}.{name}");
            case string s:
                return (object?)StringMethod(s, name) ?? Undefined.Named($"{described}.{name}");
            case TemplateNamespace ns:
                return ns.Attributes.TryGetValue(name, out var attribute) ? attribute : Undefined.Named($"{described}.{name}");
            case TemplateLoop loop:
                return loop.Get(name);
            default:
                return Undefined.Named($"{described}.{name}");
        }
    }

    public static object? Item(object? target, object? key, string described)
    {
        switch (target)
        {
            case Undefined u:
                throw new TemplateException($"'{u.Name}' is undefined (indexing it)");
            case Dictionary<string, object?> map when key is string k:
                return map.TryGetValue(k, out var value) ? value : Undefined.Named($"{described}[{PythonValues.Repr(key)}]");
            case List<object?> list when key is long or bool:
                return Index(list.Count, PythonValues.ToLong(key)) is int i ? list[i] : Undefined.Named($"{described}[{key}]");
            case string s when key is long or bool:
                var points = PythonValues.CodePoints(s);
                return Index(points.Count, PythonValues.ToLong(key)) is int j ? points[j] : Undefined.Named($"{described}[{key}]");
            default:
                return key is string name ? Attribute(target, name, described) : Undefined.Named($"{described}[{PythonValues.Repr(key)}]");
        }
    }

    private static int? Index(int count, long index)
    {
        long i = index < 0 ? index + count : index;
        return i >= 0 && i < count ? (int)i : null;
    }

    /// <summary>Python's <c>seq[start:stop:step]</c> for lists and strings.</summary>
    public static object? Slice(object? target, object? start, object? stop, object? step)
    {
        long s = step is null ? 1 : PythonValues.ToLong(step);
        if (s == 0)
            throw new TemplateException("slice step cannot be zero");
        List<object?> items = target switch
        {
            List<object?> l => l,
            string str => PythonValues.CodePoints(str).Select(c => (object?)c).ToList(),
            Undefined u => throw new TemplateException($"'{u.Name}' is undefined (slicing it)"),
            _ => throw new TemplateException($"{PythonValues.TypeName(target)} cannot be sliced"),
        };
        int n = items.Count;
        long Clamp(object? bound, long whenNone)
        {
            if (bound is null)
                return whenNone;
            long b = PythonValues.ToLong(bound);
            if (b < 0)
                b += n;
            return s > 0 ? Math.Clamp(b, 0, n) : Math.Clamp(b, -1, n - 1);
        }

        long from = Clamp(start, s > 0 ? 0 : n - 1), to = Clamp(stop, s > 0 ? n : -1);
        var result = new List<object?>();
        for (long i = from; s > 0 ? i < to : i > to; i += s)
            result.Add(items[(int)i]);
        return target is string ? string.Concat(result.Cast<string>()) : result;
    }

    private static TemplateCallable DictMethod(Dictionary<string, object?> map, string name) => name switch
    {
        "items" => new("dict.items", (_, _) => map.Select(kv => (object?)new PythonTuple([kv.Key, kv.Value])).ToList()),
        "keys" => new("dict.keys", (_, _) => map.Keys.Select(k => (object?)k).ToList()),
        "values" => new("dict.values", (_, _) => map.Values.ToList()),
        _ => new("dict.get", (args, _) => args.Count == 0 ? throw new TemplateException("dict.get needs a key")
            : args[0] is string key && map.TryGetValue(key, out var v) ? v : args.Count > 1 ? args[1] : null),
    };

    private static TemplateCallable? StringMethod(string s, string name) => name switch
    {
        "strip" => new("str.strip", (a, _) => PythonStrings.Strip(s, Chars(a), true, true)),
        "lstrip" => new("str.lstrip", (a, _) => PythonStrings.Strip(s, Chars(a), true, false)),
        "rstrip" => new("str.rstrip", (a, _) => PythonStrings.Strip(s, Chars(a), false, true)),
        "split" => new("str.split", (a, k) => PythonStrings.Split(s, Arg(a, k, 0, "sep") as string, Arg(a, k, 1, "maxsplit") is long m ? m : -1)),
        "rsplit" => new("str.rsplit", (a, k) => PythonStrings.RSplit(s, Arg(a, k, 0, "sep") as string, Arg(a, k, 1, "maxsplit") is long m ? m : -1)),
        "splitlines" => new("str.splitlines", (_, _) => s.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n').Where(_ => s.Length > 0).Select(x => (object?)x).ToList()),
        "startswith" => new("str.startswith", (a, _) => Affix(a, p => s.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => new("str.endswith", (a, _) => Affix(a, p => s.EndsWith(p, StringComparison.Ordinal))),
        "upper" => new("str.upper", (_, _) => s.ToUpperInvariant()),
        "lower" => new("str.lower", (_, _) => s.ToLowerInvariant()),
        "title" => new("str.title", (_, _) => PythonStrings.Title(s)),
        "capitalize" => new("str.capitalize", (_, _) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant()),
        "replace" => new("str.replace", (a, _) => PythonStrings.Replace(s, (string)a[0]!, (string)a[1]!, a.Count > 2 ? PythonValues.ToLong(a[2]) : -1)),
        "find" => new("str.find", (a, _) => (long)s.IndexOf((string)a[0]!, StringComparison.Ordinal)),
        "rfind" => new("str.rfind", (a, _) => (long)s.LastIndexOf((string)a[0]!, StringComparison.Ordinal)),
        "count" => new("str.count", (a, _) => PythonStrings.Count(s, (string)a[0]!)),
        "join" => new("str.join", (a, _) => string.Join(s, PythonValues.Iterate(a[0]).Select(PythonValues.Str))),
        "isdigit" => new("str.isdigit", (_, _) => s.Length > 0 && s.All(char.IsDigit)),
        "isalpha" => new("str.isalpha", (_, _) => s.Length > 0 && s.All(char.IsLetter)),
        "isspace" => new("str.isspace", (_, _) => s.Length > 0 && s.All(c => Array.IndexOf(TemplateSplitter.PythonWhitespace, c) >= 0)),
        _ => null,
    };

    private static string? Chars(IReadOnlyList<object?> args) => args.Count > 0 ? args[0] as string : null;

    private static object? Arg(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> keywords, int index, string name) =>
        index < args.Count ? args[index] : keywords.GetValueOrDefault(name);

    private static bool Affix(IReadOnlyList<object?> args, Func<string, bool> test) => args.Count > 0 && args[0] switch
    {
        string p => test(p),
        List<object?> options => options.OfType<string>().Any(test),
        _ => throw new TemplateException("startswith/endswith take a string or a tuple of strings"),
    };
}
