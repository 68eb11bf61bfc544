using System.Globalization;
using System.Text;

namespace Serving.Engine.Templating;

/// <summary>Tokenizes the inside of a tag: names, Python string and number literals, Jinja2's operators.</summary>
internal static class ExpressionLexer
{
    private static readonly string[] Operators = ["**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}",
        ",", ".", ":", "|", "="];

    public static List<ExpressionToken> Tokenize(string source, int line)
    {
        var tokens = new List<ExpressionToken>();
        int i = 0;
        while (i < source.Length)
        {
            char c = source[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
                continue;
            }

            if (char.IsLetter(c) || c == '_')
            {
                int start = i;
                while (i < source.Length && (char.IsLetterOrDigit(source[i]) || source[i] == '_'))
                    i++;
                tokens.Add(new ExpressionToken(ExpressionTokenKind.Name, source[start..i]));
                continue;
            }

            if (char.IsAsciiDigit(c))
            {
                tokens.Add(Number(source, ref i, line));
                continue;
            }

            if (c is '\'' or '"')
            {
                tokens.Add(String(source, ref i, line));
                continue;
            }

            string? op = Operators.FirstOrDefault(o => string.CompareOrdinal(source, i, o, 0, o.Length) == 0);
            if (op is null)
                throw new TemplateException($"line {line}: unexpected character '{c}' in '{source}'");
            tokens.Add(new ExpressionToken(ExpressionTokenKind.Operator, op));
            i += op.Length;
        }

        tokens.Add(new ExpressionToken(ExpressionTokenKind.End, ""));
        return tokens;
    }

    private static ExpressionToken Number(string source, ref int i, int line)
    {
        int start = i;
        bool isFloat = false;
        while (i < source.Length && (char.IsAsciiDigit(source[i]) || source[i] == '_'))
            i++;
        if (i + 1 < source.Length && source[i] == '.' && char.IsAsciiDigit(source[i + 1]))
        {
            isFloat = true;
            i++;
            while (i < source.Length && (char.IsAsciiDigit(source[i]) || source[i] == '_'))
                i++;
        }

        if (i < source.Length && source[i] is 'e' or 'E')
        {
            int save = i;
            i++;
            if (i < source.Length && source[i] is '+' or '-')
                i++;
            if (i < source.Length && char.IsAsciiDigit(source[i]))
            {
                isFloat = true;
                while (i < source.Length && char.IsAsciiDigit(source[i]))
                    i++;
            }
            else
            {
                i = save;
            }
        }

        string text = source[start..i].Replace("_", "", StringComparison.Ordinal);
        object value = isFloat ? (object)double.Parse(text, CultureInfo.InvariantCulture)
            : long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? (object)n
            : throw new TemplateException($"line {line}: integer literal {text} is too large");
        return new ExpressionToken(ExpressionTokenKind.Literal, source[start..i], value);
    }

    private static ExpressionToken String(string source, ref int i, int line)
    {
        char quote = source[i++];
        var text = new StringBuilder();
        while (true)
        {
            if (i >= source.Length)
                throw new TemplateException($"line {line}: unterminated string literal");
            char c = source[i++];
            if (c == quote)
                break;
            if (c != '\\' || i >= source.Length)
            {
                text.Append(c);
                continue;
            }

            char e = source[i++];
            switch (e)
            {
                case 'n': text.Append('\n'); break;
                case 't': text.Append('\t'); break;
                case 'r': text.Append('\r'); break;
                case '0': text.Append('\0'); break;
                case 'b': text.Append('\b'); break;
                case 'f': text.Append('\f'); break;
                case 'v': text.Append('\v'); break;
                case 'a': text.Append('\a'); break;
                case '\\': text.Append('\\'); break;
                case '\'': text.Append('\''); break;
                case '"': text.Append('"'); break;
                case '\n': break;
                case 'x' when i + 2 <= source.Length:
                    text.Append((char)int.Parse(source.AsSpan(i, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                    i += 2;
                    break;
                case 'u' when i + 4 <= source.Length:
                    text.Append((char)int.Parse(source.AsSpan(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                    i += 4;
                    break;
                case 'U' when i + 8 <= source.Length:
                    text.Append(char.ConvertFromUtf32(int.Parse(source.AsSpan(i, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
                    i += 8;
                    break;
                default:
                    text.Append('\\').Append(e);       // Python keeps unknown escapes as written
                    break;
            }
        }

        return new ExpressionToken(ExpressionTokenKind.Literal, "string", text.ToString());
    }
}
