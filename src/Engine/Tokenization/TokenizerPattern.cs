using System.Text.Json.Nodes;

namespace Serving.Engine.Tokenization;

/// <summary>A tokenizer.json <c>pattern</c>: <c>{"String": "…"}</c> (literal) or <c>{"Regex": "…"}</c> (matched on code points).</summary>
public sealed class TokenizerPattern
{
    private readonly string? _literal;
    private readonly CodePointRegex? _regex;

    private TokenizerPattern(string? literal, CodePointRegex? regex) => (_literal, _regex) = (literal, regex);

    public static TokenizerPattern FromJson(JsonNode? node, string source, string where)
    {
        if (node?["String"]?.GetValue<string>() is string literal)
            return literal.Length > 0 ? new TokenizerPattern(literal, null) : throw new TokenizerException($"{source}: {where} has an empty String pattern");
        if (node?["Regex"]?.GetValue<string>() is string regex)
            return new TokenizerPattern(null, new CodePointRegex(regex));
        throw new TokenizerException($"{source}: {where} needs a pattern {{\"String\": …}} or {{\"Regex\": …}}");
    }

    /// <summary>Every non-overlapping match, left to right, as (start, length) in UTF-16 units.</summary>
    public IEnumerable<(int Start, int Length)> Matches(string text)
    {
        if (_regex is not null)
        {
            foreach (var m in _regex.Matches(text))
                if (m.Length > 0)
                    yield return m;
            yield break;
        }

        for (int at = text.IndexOf(_literal!, StringComparison.Ordinal); at >= 0; at = text.IndexOf(_literal!, at + _literal!.Length, StringComparison.Ordinal))
            yield return (at, _literal!.Length);
    }

    public string Replace(string text, string content)
    {
        var sb = new System.Text.StringBuilder(text.Length);
        int last = 0;
        foreach (var (start, length) in Matches(text))
        {
            sb.Append(text, last, start - last).Append(content);
            last = start + length;
        }

        return sb.Append(text, last, text.Length - last).ToString();
    }
}
