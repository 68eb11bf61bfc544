using System.Globalization;
using System.Text;

namespace Serving.Engine.Templating;

/// <summary>
/// Template values with Python's meaning, since chat templates are written against Python: <c>null</c> is None,
/// <see cref="Undefined"/>, <see cref="bool"/>, <see cref="long"/> (int), <see cref="double"/> (float), <see cref="string"/>,
/// <see cref="List{T}"/> (list and tuple), <see cref="Dictionary{TKey,TValue}"/> with string keys in insertion order
/// (dict), <see cref="TemplateNamespace"/>, <see cref="TemplateLoop"/> and <see cref="TemplateCallable"/>. Truth, equality,
/// ordering, <c>str()</c> and <c>repr()</c> follow Python; strings are measured and sliced in code points.
/// </summary>
internal static class PythonValues
{
    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long n => n != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        Dictionary<string, object?> m => m.Count > 0,
        _ => true,
    };

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static double ToDouble(object? v) => v switch
    {
        long n => n,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new TemplateException($"{TypeName(v)} is not a number"),
    };

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        Undefined u => $"undefined ('{u.Name}')",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        Dictionary<string, object?> => "dict",
        TemplateNamespace => "Namespace",
        TemplateLoop => "LoopContext",
        TemplateCallable => "function",
        _ => v.GetType().Name,
    };

    public static bool AreEqual(object? a, object? b)
    {
        if (a is Undefined || b is Undefined)
            return a is Undefined && b is Undefined;
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a) == ToDouble(b) : ToLong(a) == ToLong(b);
        return (a, b) switch
        {
            (null, null) => true,
            (string x, string y) => x == y,
            (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => AreEqual(p.First, p.Second)),
            (Dictionary<string, object?> x, Dictionary<string, object?> y) => x.Count == y.Count
                && x.All(kv => y.TryGetValue(kv.Key, out var other) && AreEqual(kv.Value, other)),
            _ => ReferenceEquals(a, b),
        };
    }

    public static long ToLong(object? v) => v switch
    {
        long n => n,
        bool b => b ? 1 : 0,
        double d => (long)d,
        _ => throw new TemplateException($"{TypeName(v)} is not an integer"),
    };

    public static int Compare(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a).CompareTo(ToDouble(b)) : ToLong(a).CompareTo(ToLong(b));
        return (a, b) switch
        {
            (string x, string y) => string.CompareOrdinal(x, y) switch { < 0 => -1, > 0 => 1, _ => 0 },
            (List<object?> x, List<object?> y) => CompareLists(x, y),
            _ => throw new TemplateException($"'<' is not supported between {TypeName(a)} and {TypeName(b)}"),
        };
    }

    private static int CompareLists(List<object?> x, List<object?> y)
    {
        for (int i = 0; i < Math.Min(x.Count, y.Count); i++)
            if (!AreEqual(x[i], y[i]))
                return Compare(x[i], y[i]);
        return x.Count.CompareTo(y.Count);
    }

    /// <summary>Python's <c>str()</c>; undefined prints as nothing.</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    public static string Repr(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        bool b => b ? "True" : "False",
        long n => n.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        string s => StringRepr(s),
        PythonTuple t => "(" + string.Join(", ", t.Select(Repr)) + (t.Count == 1 ? ",)" : ")"),
        List<object?> l => "[" + string.Join(", ", l.Select(Repr)) + "]",
        Dictionary<string, object?> m => "{" + string.Join(", ", m.Select(kv => StringRepr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        TemplateNamespace ns => "<Namespace " + Repr(ns.Attributes) + ">",
        TemplateCallable c => $"<function {c.Name}>",
        _ => v.ToString() ?? "",
    };

    /// <summary>Python's float repr: the shortest round-trip digits, exponent form below 1e-4 and from 1e16.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d))
            return "nan";
        if (double.IsInfinity(d))
            return d > 0 ? "inf" : "-inf";
        if (d == 0)
            return 1 / d < 0 ? "-0.0" : "0.0";
        // Digits and exponent of the shortest round-trip form, then laid out as Python's repr does.
        var (digits, exponent) = Decompose(d.ToString("R", CultureInfo.InvariantCulture));
        bool negative = d < 0;
        string body;
        if (exponent < -4 || exponent >= 16)
        {
            string mantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            body = mantissa + "e" + (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
        }
        else if (exponent < 0)
        {
            body = "0." + new string('0', -exponent - 1) + digits;
        }
        else if (digits.Length <= exponent + 1)
        {
            body = digits + new string('0', exponent + 1 - digits.Length) + ".0";
        }
        else
        {
            body = digits[..(exponent + 1)] + "." + digits[(exponent + 1)..];
        }

        return negative ? "-" + body : body;
    }

    /// <summary>Significant digits (no leading or trailing zeros) and the decimal exponent of the first one.</summary>
    private static (string Digits, int Exponent) Decompose(string shortest)
    {
        string s = shortest.TrimStart('-');
        int exponent = 0;
        int e = s.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(s[(e + 1)..], CultureInfo.InvariantCulture);
            s = s[..e];
        }

        int dot = s.IndexOf('.');
        string whole = dot < 0 ? s : s[..dot];
        string fraction = dot < 0 ? "" : s[(dot + 1)..];
        string all = whole + fraction;
        int firstNonZero = 0;
        while (firstNonZero < all.Length - 1 && all[firstNonZero] == '0')
            firstNonZero++;
        exponent += whole.Length - 1 - firstNonZero;
        string digits = all[firstNonZero..].TrimEnd('0');
        return (digits.Length == 0 ? "0" : digits, exponent);
    }

    public static string StringRepr(string s)
    {
        char quote = s.Contains('\'', StringComparison.Ordinal) && !s.Contains('"', StringComparison.Ordinal) ? '"' : '\'';
        var sb = new StringBuilder().Append(quote);
        foreach (var rune in s.EnumerateRunes())
        {
            int c = rune.Value;
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == quote)
                        sb.Append('\\').Append(quote);
                    else if (c < 0x20 || c == 0x7f)
                        sb.Append("\\x").Append(c.ToString("x2", CultureInfo.InvariantCulture));
                    else if (!IsPrintable(rune))
                        sb.Append(c <= 0xff ? "\\x" + c.ToString("x2", CultureInfo.InvariantCulture)
                            : c <= 0xffff ? "\\u" + c.ToString("x4", CultureInfo.InvariantCulture) : "\\U" + c.ToString("x8", CultureInfo.InvariantCulture));
                    else
                        sb.Append(rune.ToString());
                    break;
            }
        }

        return sb.Append(quote).ToString();
    }

    /// <summary>Python's <c>str.isprintable</c> for one character: not a control, format, separator (but space) or unassigned.</summary>
    private static bool IsPrintable(Rune rune) => Rune.GetUnicodeCategory(rune) switch
    {
        UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned
            or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator => false,
        UnicodeCategory.SpaceSeparator => rune.Value == ' ',
        _ => true,
    };

    /// <summary>A string's code points (Python indexes and measures strings by them).</summary>
    public static List<string> CodePoints(string s) => s.EnumerateRunes().Select(r => r.ToString()).ToList();

    /// <summary>What <c>for x in value</c> walks: list items, dict keys, string characters; undefined is empty.</summary>
    public static List<object?> Iterate(object? value) => value switch
    {
        List<object?> l => l,
        Dictionary<string, object?> m => m.Keys.Select(k => (object?)k).ToList(),
        string s => CodePoints(s).Select(c => (object?)c).ToList(),
        Undefined => [],
        _ => throw new TemplateException($"{TypeName(value)} is not iterable"),
    };

    public static object? Length(object? value) => value switch
    {
        string s => (long)s.EnumerateRunes().Count(),
        List<object?> l => (long)l.Count,
        Dictionary<string, object?> m => (long)m.Count,
        Undefined => 0L,
        _ => throw new TemplateException($"{TypeName(value)} has no length"),
    };
}
