using System.Text;

namespace Serving.Engine.Templating;

/// <summary>Python's <c>str</c> methods whose edge cases differ from .NET's (whitespace set, <c>split()</c> without a separator, counts).</summary>
internal static class PythonStrings
{
    public static string Strip(string s, string? chars, bool left, bool right)
    {
        char[] set = chars?.ToCharArray() ?? TemplateSplitter.PythonWhitespace;
        if (left)
            s = s.TrimStart(set);
        if (right)
            s = s.TrimEnd(set);
        return s;
    }

    public static List<object?> Split(string s, string? separator, long maxSplit)
    {
        var parts = new List<object?>();
        if (separator is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && IsSpace(s[i]))
                    i++;
                if (i >= s.Length)
                    break;
                if (maxSplit >= 0 && parts.Count == maxSplit)
                {
                    parts.Add(s[i..].TrimEnd(TemplateSplitter.PythonWhitespace));
                    break;
                }

                int start = i;
                while (i < s.Length && !IsSpace(s[i]))
                    i++;
                parts.Add(s[start..i]);
            }

            return parts;
        }

        if (separator.Length == 0)
            throw new TemplateException("empty separator");
        int from = 0;
        while (maxSplit < 0 || parts.Count < maxSplit)
        {
            int at = s.IndexOf(separator, from, StringComparison.Ordinal);
            if (at < 0)
                break;
            parts.Add(s[from..at]);
            from = at + separator.Length;
        }

        parts.Add(s[from..]);
        return parts;
    }

    public static List<object?> RSplit(string s, string? separator, long maxSplit)
    {
        if (maxSplit < 0 || separator is null)
            return Split(s, separator, maxSplit);
        var parts = new List<object?>();
        int end = s.Length;
        while (parts.Count < maxSplit)
        {
            int at = end == 0 ? -1 : s.LastIndexOf(separator, end - 1, StringComparison.Ordinal);
            if (at < 0 || at + separator.Length > end)
                break;
            parts.Insert(0, s[(at + separator.Length)..end]);
            end = at;
        }

        parts.Insert(0, s[..end]);
        return parts;
    }

    public static string Replace(string s, string old, string replacement, long count)
    {
        if (count < 0)
            return old.Length == 0 ? string.Join(replacement, ["", .. PythonValues.CodePoints(s), ""]) : s.Replace(old, replacement, StringComparison.Ordinal);
        var sb = new StringBuilder();
        int from = 0;
        for (long n = 0; n < count; n++)
        {
            int at = s.IndexOf(old, from, StringComparison.Ordinal);
            if (at < 0 || old.Length == 0)
                break;
            sb.Append(s, from, at - from).Append(replacement);
            from = at + old.Length;
        }

        return sb.Append(s, from, s.Length - from).ToString();
    }

    public static long Count(string s, string sub)
    {
        if (sub.Length == 0)
            return s.EnumerateRunes().Count() + 1;
        long n = 0;
        for (int at = s.IndexOf(sub, StringComparison.Ordinal); at >= 0; at = s.IndexOf(sub, at + sub.Length, StringComparison.Ordinal))
            n++;
        return n;
    }

    /// <summary>Python's <c>str.title</c>: a letter after a non-letter is upper-cased, every other letter lower-cased.</summary>
    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            sb.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }

        return sb.ToString();
    }

    private static bool IsSpace(char c) => Array.IndexOf(TemplateSplitter.PythonWhitespace, c) >= 0;
}
