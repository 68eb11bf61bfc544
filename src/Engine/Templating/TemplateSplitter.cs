using System.Text.RegularExpressions;

namespace Serving.Engine.Templating;

/// <summary>
/// Splits template source into text, output and statement pieces with Jinja2's whitespace control as transformers
/// configures it for chat templates (<c>trim_blocks=True, lstrip_blocks=True</c>): a block or comment tag alone on its
/// line takes its indentation with it and the newline after it; <c>{%-</c> / <c>-%}</c> strip all whitespace on that
/// side, <c>{%+</c> / <c>+%}</c> keep it. Comments vanish; <c>{% raw %}</c> bodies stay literal.
/// </summary>
internal static partial class TemplateSplitter
{
    [GeneratedRegex(@"\{%[-+]?\s*endraw\s*[-+]?%\}")]
    private static partial Regex EndRaw();

    public static List<TemplateSegment> Split(string source)
    {
        // As Jinja2's lexer: line endings of the source become '\n', and one trailing newline is dropped
        // (keep_trailing_newline=False).
        source = source.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n');
        if (source.EndsWith('\n'))
            source = source[..^1];
        var segments = new List<TemplateSegment>();
        int pos = 0;
        while (pos < source.Length)
        {
            int open = NextTag(source, pos);
            if (open < 0)
            {
                Add(segments, TemplateSegmentKind.Text, source[pos..], source, pos);
                break;
            }

            char kind = source[open + 1];
            int inner = open + 2;
            char mark = inner < source.Length ? source[inner] : '\0';
            string text = source[pos..open];
            if (mark == '-')
                text = text.TrimEnd(PythonWhitespace);
            else if (kind is '%' or '#' && mark != '+')
                text = LstripBlock(text, pos == 0 || source[pos - 1] == '\n');
            Add(segments, TemplateSegmentKind.Text, text, source, pos);
            if (mark is '-' or '+')
                inner++;

            int close = kind == '#' ? source.IndexOf("#}", inner, StringComparison.Ordinal) : FindClose(source, inner, kind == '{' ? '}' : '%');
            if (close < 0)
                throw new TemplateException($"line {LineOf(source, open)}: '{source.Substring(open, 2)}' is never closed");
            int innerEnd = close;
            char endMark = close > inner ? source[close - 1] : '\0';
            if (endMark is '-' or '+')
                innerEnd--;
            string body = source[inner..innerEnd].Trim();
            pos = close + 2;
            if (endMark == '-')
                pos = SkipWhitespace(source, pos);
            else if (kind is '%' or '#' && endMark != '+' && pos < source.Length && source[pos] == '\n')
                pos++;

            if (kind == '#')
                continue;
            if (kind == '{')
            {
                segments.Add(new TemplateSegment(TemplateSegmentKind.Output, body, LineOf(source, open)));
                continue;
            }

            if (body == "raw")
            {
                // Jinja2 keeps the newline after '{% raw %}' (trim_blocks does not apply to it), unlike after other blocks.
                pos = endMark == '-' ? SkipWhitespace(source, close + 2) : close + 2;
                var end = EndRaw().Match(source, pos);
                if (!end.Success)
                    throw new TemplateException($"line {LineOf(source, open)}: '{{% raw %}}' is never closed");
                string raw = source[pos..end.Index];
                if (end.Value.StartsWith("{%-", StringComparison.Ordinal))
                    raw = raw.TrimEnd(PythonWhitespace);
                Add(segments, TemplateSegmentKind.Text, raw, source, pos);
                pos = end.Index + end.Length;
                if (end.Value.EndsWith("-%}", StringComparison.Ordinal))
                    pos = SkipWhitespace(source, pos);
                else if (!end.Value.EndsWith("+%}", StringComparison.Ordinal) && pos < source.Length && source[pos] == '\n')
                    pos++;
                continue;
            }

            segments.Add(new TemplateSegment(TemplateSegmentKind.Statement, body, LineOf(source, open)));
        }

        return segments;
    }

    /// <summary>Python's <c>str.isspace</c> set, which Jinja2's <c>\s</c> matches.</summary>
    public static readonly char[] PythonWhitespace = [' ', '\t', '\n', '\r', '\f', '\v', '\u001c', '\u001d', '\u001e', '\u001f', '\u0085', '\u00a0',
        '\u1680', '\u2000', '\u2001', '\u2002', '\u2003', '\u2004', '\u2005', '\u2006', '\u2007', '\u2008', '\u2009', '\u200a', '\u2028', '\u2029',
        '\u202f', '\u205f', '\u3000'];

    private static void Add(List<TemplateSegment> segments, TemplateSegmentKind kind, string text, string source, int at)
    {
        if (text.Length > 0)
            segments.Add(new TemplateSegment(kind, text, LineOf(source, at)));
    }

    /// <summary>lstrip_blocks: the tag's own line up to it, when that is only spaces and tabs.</summary>
    private static string LstripBlock(string text, bool textStartsALine)
    {
        int newline = text.LastIndexOf('\n');
        if (newline < 0 && !textStartsALine)
            return text;
        for (int i = newline + 1; i < text.Length; i++)
            if (text[i] is not (' ' or '\t'))
                return text;
        return text[..(newline + 1)];
    }

    private static int NextTag(string source, int from)
    {
        for (int i = source.IndexOf('{', from); i >= 0 && i + 1 < source.Length; i = source.IndexOf('{', i + 1))
            if (source[i + 1] is '{' or '%' or '#')
                return i;
        return -1;
    }

    /// <summary>The closing <c>}}</c> or <c>%}</c>, skipping string literals (a <c>'}}'</c> inside one does not end the tag).</summary>
    private static int FindClose(string source, int from, char closer)
    {
        char quote = '\0';
        for (int i = from; i + 1 < source.Length; i++)
        {
            char c = source[i];
            if (quote != '\0')
            {
                if (c == '\\')
                    i++;
                else if (c == quote)
                    quote = '\0';
                continue;
            }

            if (c is '\'' or '"')
                quote = c;
            else if (c == closer && source[i + 1] == '}')
                return i;
        }

        return -1;
    }

    private static int SkipWhitespace(string source, int pos)
    {
        while (pos < source.Length && Array.IndexOf(PythonWhitespace, source[pos]) >= 0)
            pos++;
        return pos;
    }

    public static int LineOf(string source, int index)
    {
        int line = 1;
        for (int i = 0; i < index && i < source.Length; i++)
            if (source[i] == '\n')
                line++;
        return line;
    }
}
