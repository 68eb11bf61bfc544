using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Serving.Server.Api.OpenAi.Tools;

/// <summary>
/// Reads a Python list of calls, <c>[get_weather(city="Paris", days=3), now()]</c>, whose keyword arguments are Python
/// literals (strings, numbers, <c>True</c>/<c>False</c>/<c>None</c>, lists, tuples, dicts with string keys), into each
/// call's name and its arguments as a JSON object. Anything else — an expression, a positional argument, a stray
/// character — is not a call list (null), as Python's <c>ast.literal_eval</c> would refuse it.
/// </summary>
internal sealed class PythonLiteralCalls
{
    /// <summary>Deepest nesting of literals read; deeper text is refused (the reader recurses).</summary>
    private const int MaxDepth = 64;

    private readonly string _text;
    private int _at;

    private PythonLiteralCalls(string text) => _text = text;

    public static List<(string Name, string Arguments)>? Read(string text)
    {
        var reader = new PythonLiteralCalls(text);
        try
        {
            var calls = reader.CallList();
            reader.Space();
            return reader._at == text.Length && calls.Count > 0 ? calls : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private List<(string, string)> CallList()
    {
        Expect('[');
        var calls = new List<(string, string)>();
        while (true)
        {
            Space();
            if (Take(']'))
                return calls;
            calls.Add(Call());
            Space();
            if (Take(']'))
                return calls;
            Expect(',');
        }
    }

    private (string, string) Call()
    {
        string name = Name(allowDots: true);
        Space();
        Expect('(');
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            while (true)
            {
                Space();
                if (Take(')'))
                    break;
                json.WritePropertyName(Name(allowDots: false));
                Space();
                Expect('=');
                Space();
                Literal(json, 1);
                Space();
                if (Take(')'))
                    break;
                Expect(',');
            }

            json.WriteEndObject();
        }

        return (name, Encoding.UTF8.GetString(buffer.ToArray()));
    }

    private void Literal(Utf8JsonWriter json, int depth)
    {
        if (depth > MaxDepth)
            throw new FormatException("nested too deep");
        char c = Peek();
        switch (c)
        {
            case '"' or '\'':
                json.WriteStringValue(String());
                return;
            case '[' or '(':
                _at++;
                json.WriteStartArray();
                Items(json, c == '[' ? ']' : ')', depth, (w, d) => Literal(w, d + 1));
                json.WriteEndArray();
                return;
            case '{':
                _at++;
                json.WriteStartObject();
                Items(json, '}', depth, (w, d) =>
                {
                    if (Peek() is not ('"' or '\''))
                        throw new FormatException("a dict key must be a string");
                    w.WritePropertyName(String());
                    Space();
                    Expect(':');
                    Space();
                    Literal(w, d + 1);
                });
                json.WriteEndObject();
                return;
        }

        if (char.IsAsciiDigit(c) || c is '-' or '+' or '.')
        {
            int start = _at;
            while (_at < _text.Length && (char.IsAsciiDigit(_text[_at]) || _text[_at] is '-' or '+' or '.' or 'e' or 'E' or '_'))
                _at++;
            string number = _text[start.._at].Replace("_", "", StringComparison.Ordinal);
            if (long.TryParse(number, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long integer))
                json.WriteNumberValue(integer);
            else if (double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double real) && double.IsFinite(real))
                json.WriteNumberValue(real);
            else
                throw new FormatException("not a number");
            return;
        }

        switch (Name(allowDots: false))
        {
            case "True": json.WriteBooleanValue(true); return;
            case "False": json.WriteBooleanValue(false); return;
            case "None": json.WriteNullValue(); return;
            default: throw new FormatException("not a literal");
        }
    }

    /// <summary>Comma-separated items up to <paramref name="close"/> (a trailing comma allowed, as Python allows it).</summary>
    private void Items(Utf8JsonWriter json, char close, int depth, Action<Utf8JsonWriter, int> item)
    {
        while (true)
        {
            Space();
            if (Take(close))
                return;
            item(json, depth);
            Space();
            if (Take(close))
                return;
            Expect(',');
        }
    }

    private string String()
    {
        char quote = _text[_at++];
        var sb = new StringBuilder();
        while (true)
        {
            if (_at >= _text.Length)
                throw new FormatException("unterminated string");
            char c = _text[_at++];
            if (c == quote)
                return sb.ToString();
            if (c == '\n')
                throw new FormatException("a newline inside a string");
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }

            if (_at >= _text.Length)
                throw new FormatException("unterminated string");
            char e = _text[_at++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '0': sb.Append('\0'); break;
                case 'x': sb.Append((char)Hex(2)); break;
                case 'u': sb.Append((char)Hex(4)); break;
                case 'U': sb.Append(char.ConvertFromUtf32(Hex(8))); break;
                case '\\' or '\'' or '"': sb.Append(e); break;
                default: sb.Append('\\').Append(e); break;       // Python keeps an unknown escape as written
            }
        }
    }

    private int Hex(int digits)
    {
        if (_at + digits > _text.Length || !int.TryParse(_text.AsSpan(_at, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int value)
            || value > 0x10FFFF)
            throw new FormatException("a bad escape");
        _at += digits;
        return value;
    }

    private string Name(bool allowDots)
    {
        int start = _at;
        while (_at < _text.Length && (char.IsAsciiLetterOrDigit(_text[_at]) || _text[_at] == '_' || (allowDots && _text[_at] == '.')))
            _at++;
        if (_at == start || char.IsAsciiDigit(_text[start]))
            throw new FormatException("not a name");
        return _text[start.._at];
    }

    private char Peek() => _at < _text.Length ? _text[_at] : throw new FormatException("the text ended");

    private bool Take(char c)
    {
        if (_at < _text.Length && _text[_at] == c)
        {
            _at++;
            return true;
        }

        return false;
    }

    private void Expect(char c)
    {
        if (!Take(c))
            throw new FormatException($"'{c}' expected");
    }

    private void Space()
    {
        while (_at < _text.Length && char.IsWhiteSpace(_text[_at]))
            _at++;
    }
}
