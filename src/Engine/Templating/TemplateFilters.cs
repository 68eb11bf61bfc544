using System.Globalization;
using System.Net;

namespace Serving.Engine.Templating;

/// <summary>
/// The filters chat templates use, with Jinja2's arguments and results (<c>tojson</c> as transformers overrides it).
/// An unknown filter is an error naming it.
/// </summary>
internal sealed class TemplateFilters
{
    /// <summary>Every filter <see cref="Apply"/> knows: the parser refuses others when the template is loaded, as Jinja2 does.</summary>
    public static readonly IReadOnlySet<string> Names = new HashSet<string>(StringComparer.Ordinal) { "default", "d", "tojson", "trim", "length", "count", "string", "upper", "lower", "title", "capitalize", "replace", "first", "last", "list", "reverse", "join", "items", "dictsort", "selectattr", "rejectattr", "select", "reject", "map", "unique", "sort", "sum", "min", "max", "abs", "int", "float", "round", "indent", "wordcount", "escape", "e", "forceescape", "safe", "center" };

    public object? Apply(string name, object? value, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> keywords)
    {
        object? Arg(int index, string key, object? fallback = null) => index < args.Count ? args[index] : keywords.TryGetValue(key, out var v) ? v : fallback;
        switch (name)
        {
            case "default" or "d":
                return value is Undefined || (PythonValues.Truthy(Arg(1, "boolean", false)) && !PythonValues.Truthy(value)) ? Arg(0, "default_value", "") : value;
            case "tojson":
                // transformers' signature: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
                return TemplateJson.Dumps(value, Arg(1, "indent") is long indent ? indent : null,
                    Arg(2, "separators") is List<object?> { Count: 2 } s ? (PythonValues.Str(s[0]), PythonValues.Str(s[1])) : null,
                    PythonValues.Truthy(Arg(3, "sort_keys", false)), PythonValues.Truthy(Arg(0, "ensure_ascii", false)));
            case "trim":
                return PythonStrings.Strip(Text(value), Arg(0, "chars") as string, true, true);
            case "length" or "count":
                return PythonValues.Length(value);
            case "string":
                return PythonValues.Str(value);
            case "upper":
                return Text(value).ToUpperInvariant();
            case "lower":
                return Text(value).ToLowerInvariant();
            case "title":
                return PythonStrings.Title(Text(value));
            case "capitalize":
                string c = Text(value);
                return c.Length == 0 ? c : char.ToUpperInvariant(c[0]) + c[1..].ToLowerInvariant();
            case "replace":
                return PythonStrings.Replace(Text(value), PythonValues.Str(Arg(0, "old")), PythonValues.Str(Arg(1, "new")), Arg(2, "count") is long n ? n : -1);
            case "first":
                return PythonValues.Iterate(value) is { Count: > 0 } f ? f[0] : Undefined.Named("first");
            case "last":
                return PythonValues.Iterate(value) is { Count: > 0 } l ? l[^1] : Undefined.Named("last");
            case "list":
                return PythonValues.Iterate(value).ToList();
            case "reverse":
                return value is string r ? string.Concat(PythonValues.CodePoints(r).AsEnumerable().Reverse()) : PythonValues.Iterate(value).AsEnumerable().Reverse().ToList();
            case "join":
                var items = PythonValues.Iterate(value);
                if (Arg(1, "attribute") is { } attribute)
                    items = items.Select(i => Attribute(i, attribute)).ToList();
                return string.Join(PythonValues.Str(Arg(0, "d", "")), items.Select(PythonValues.Str));
            case "items":
                return value is Dictionary<string, object?> map ? map.Select(kv => (object?)new PythonTuple([kv.Key, kv.Value])).ToList()
                    : value is Undefined ? [] : throw new TemplateException($"items needs a mapping, not {PythonValues.TypeName(value)}");
            case "dictsort":
                return value is Dictionary<string, object?> dict ? dict.OrderBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase)
                    .Select(kv => (object?)new PythonTuple([kv.Key, kv.Value])).ToList() : throw new TemplateException("dictsort needs a mapping");
            case "selectattr" or "rejectattr":
                return Select(PythonValues.Iterate(value), args, name == "selectattr", byAttribute: true);
            case "select" or "reject":
                return Select(PythonValues.Iterate(value), args, name == "select", byAttribute: false);
            case "map":
                var source = PythonValues.Iterate(value);
                if (keywords.GetValueOrDefault("attribute") is { } mapped)
                    return source.Select(i => Attribute(i, mapped) is Undefined && keywords.TryGetValue("default", out var dflt) ? dflt : Attribute(i, mapped)).ToList();
                string filter = args.Count > 0 && args[0] is string filterName ? filterName : throw new TemplateException("map needs a filter name or attribute=");
                return source.Select(i => Apply(filter, i, args.Skip(1).ToList(), new Dictionary<string, object?>())).ToList();
            case "unique":
                var unique = new List<object?>();
                foreach (var i in PythonValues.Iterate(value))
                    if (!unique.Any(u => PythonValues.AreEqual(u, i)))
                        unique.Add(i);
                return unique;
            case "sort":
                var sorted = PythonValues.Iterate(value).ToList();
                var key = Arg(2, "attribute");
                sorted.Sort((a, b) => PythonValues.Compare(key is null ? a : Attribute(a, key), key is null ? b : Attribute(b, key)));
                if (PythonValues.Truthy(Arg(0, "reverse", false)))
                    sorted.Reverse();
                return sorted;
            case "sum":
                object? total = Arg(1, "start", 0L);
                foreach (var i in PythonValues.Iterate(value))
                    total = ExpressionEvaluator.Binary("+", total, Arg(0, "attribute") is { } a ? Attribute(i, a) : i);
                return total;
            case "min" or "max":
                var all = PythonValues.Iterate(value);
                if (all.Count == 0)
                    return Undefined.Named(name);
                return all.Aggregate((a, b) => PythonValues.Compare(a, b) <= 0 == (name == "min") ? a : b);
            case "abs":
                return value is long ln ? (object)Math.Abs(ln) : Math.Abs(PythonValues.ToDouble(value));
            case "int":
                return ToInt(value, Arg(0, "default", 0L));
            case "float":
                return value is string fs && double.TryParse(fs, NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed) ? parsed
                    : PythonValues.IsNumber(value) ? PythonValues.ToDouble(value) : Arg(0, "default", 0.0);
            case "round":
                int precision = (int)PythonValues.ToLong(Arg(0, "precision", 0L));
                string method = PythonValues.Str(Arg(1, "method", "common"));
                double x = PythonValues.ToDouble(value), scale = Math.Pow(10, precision);
                return method switch
                {
                    "ceil" => Math.Ceiling(x * scale) / scale,
                    "floor" => Math.Floor(x * scale) / scale,
                    _ => Math.Round(x * scale, MidpointRounding.ToEven) / scale,          // Python's round() halves to even
                };
            case "indent":
                return Indent(Text(value), Arg(0, "width", 4L), PythonValues.Truthy(Arg(1, "first", false)), PythonValues.Truthy(Arg(2, "blank", false)));
            case "wordcount":
                return (long)PythonStrings.Split(Text(value), null, -1).Count;
            case "escape" or "e" or "forceescape":
                return WebUtility.HtmlEncode(PythonValues.Str(value));
            case "safe":
                return value;
            case "center":
                string centered = Text(value);
                int width = (int)PythonValues.ToLong(Arg(0, "width", 80L));
                int pad = Math.Max(0, width - centered.Length);
                return new string(' ', pad / 2 + (pad % 2 & width % 2)) + centered + new string(' ', pad - (pad / 2 + (pad % 2 & width % 2)));
            default:
                throw new TemplateException($"the filter '{name}' is not supported in chat templates");
        }
    }

    private static string Text(object? value) => value is Undefined ? "" : PythonValues.Str(value);

    private static object? ToInt(object? value, object? fallback) => value switch
    {
        long n => n,
        bool b => b ? 1L : 0L,
        double d => (long)Math.Truncate(d),
        string s when long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n) => n,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => (long)Math.Truncate(d),
        _ => fallback,
    };

    /// <summary>An attribute path (<c>a.b</c>) or key of an item, as <c>attribute=</c> arguments name them.</summary>
    private static object? Attribute(object? item, object? path)
    {
        foreach (string part in PythonValues.Str(path).Split('.'))
            item = item is Undefined ? item : long.TryParse(part, out long index) ? TemplateMembers.Item(item, index, part) : TemplateMembers.Item(item, part, part);
        return item;
    }

    private static List<object?> Select(List<object?> items, IReadOnlyList<object?> args, bool keep, bool byAttribute)
    {
        int testAt = byAttribute ? 1 : 0;
        return items.Where(item =>
        {
            object? subject = byAttribute ? Attribute(item, args.Count > 0 ? args[0] : throw new TemplateException("selectattr needs an attribute")) : item;
            bool passed = args.Count > testAt
                ? TemplateTests.Apply(PythonValues.Str(args[testAt]), subject, args.Skip(testAt + 1).ToList())
                : PythonValues.Truthy(subject);
            return passed == keep;
        }).ToList();
    }

    private static string Indent(string text, object? width, bool first, bool blank)
    {
        string pad = width is string s ? s : new string(' ', (int)PythonValues.ToLong(width));
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            if (i == 0 && !first)
                continue;
            if (lines[i].Length > 0 || blank)
                lines[i] = pad + lines[i];
        }

        return string.Join('\n', lines);
    }
}
