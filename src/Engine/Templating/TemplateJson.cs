using System.Globalization;
using System.Text;

namespace Serving.Engine.Templating;

/// <summary>
/// The <c>tojson</c> filter as transformers defines it for chat templates: Python's
/// <c>json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)</c> (not Jinja2's
/// HTML-safe one): keys in insertion order, non-ASCII text as is unless asked, floats as Python prints them.
/// </summary>
internal sealed class TemplateJson
{
    private readonly StringBuilder _sb = new();
    private readonly long? _indent;
    private readonly (string Item, string Key) _separators;
    private readonly bool _sortKeys;
    private readonly bool _ensureAscii;

    private TemplateJson(long? indent, (string Item, string Key) separators, bool sortKeys, bool ensureAscii)
    {
        _indent = indent;
        _separators = separators;
        _sortKeys = sortKeys;
        _ensureAscii = ensureAscii;
    }

    public static string Dumps(object? value, long? indent, (string Item, string Key)? separators, bool sortKeys, bool ensureAscii)
    {
        var json = new TemplateJson(indent, separators ?? (indent is null ? (", ", ": ") : (",", ": ")), sortKeys, ensureAscii);
        json.Write(value, 0);
        return json._sb.ToString();
    }

    private void Write(object? value, int depth)
    {
        switch (value)
        {
            case null:
                _sb.Append("null");
                break;
            case Undefined u:
                throw new TemplateException($"'{u.Name}' is undefined and cannot be serialised to JSON");
            case bool b:
                _sb.Append(b ? "true" : "false");
                break;
            case long n:
                _sb.Append(n.ToString(CultureInfo.InvariantCulture));
                break;
            case double d:
                _sb.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : PythonValues.FloatRepr(d));
                break;
            case string s:
                String(s);
                break;
            case List<object?> list:
                Container('[', ']', list.Count, depth, i => Write(list[i], depth + 1));
                break;
            case Dictionary<string, object?> map:
                var entries = _sortKeys ? map.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList() : map.ToList();
                Container('{', '}', entries.Count, depth, i =>
                {
                    String(entries[i].Key);
                    _sb.Append(_separators.Key);
                    Write(entries[i].Value, depth + 1);
                });
                break;
            case TemplateNamespace ns:
                Write(ns.Attributes, depth);
                break;
            default:
                throw new TemplateException($"{PythonValues.TypeName(value)} is not JSON serialisable");
        }
    }

    private void Container(char open, char close, int count, int depth, Action<int> item)
    {
        _sb.Append(open);
        if (count == 0)
        {
            _sb.Append(close);
            return;
        }

        string? newline = _indent is long n ? "\n" + new string(' ', (int)(n * (depth + 1))) : null;
        for (int i = 0; i < count; i++)
        {
            if (i > 0)
                _sb.Append(_separators.Item);
            if (newline is not null)
                _sb.Append(newline);
            item(i);
        }

        if (_indent is long m)
            _sb.Append('\n').Append(' ', (int)(m * depth));
        _sb.Append(close);
    }

    private void String(string s)
    {
        _sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': _sb.Append("\\\""); break;
                case '\\': _sb.Append("\\\\"); break;
                case '\n': _sb.Append("\\n"); break;
                case '\r': _sb.Append("\\r"); break;
                case '\t': _sb.Append("\\t"); break;
                case '\b': _sb.Append("\\b"); break;
                case '\f': _sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (_ensureAscii && c > 0x7f))
                        _sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        _sb.Append(c);
                    break;
            }
        }

        _sb.Append('"');
    }
}
