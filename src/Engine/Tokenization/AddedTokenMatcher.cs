using System.Text.RegularExpressions;

namespace Serving.Engine.Tokenization;

/// <summary>
/// Finds added tokens in input text, longest content first and left to right, with each token's <c>single_word</c>,
/// <c>lstrip</c> and <c>rstrip</c> rules (the Rust library's <c>AddedVocabulary</c>).
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Regex? _pattern;
    private readonly Dictionary<string, AddedToken> _byContent;

    public AddedTokenMatcher(IReadOnlyList<AddedToken> tokens)
    {
        _byContent = tokens.GroupBy(t => t.Content).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var alternatives = _byContent.Keys.Where(c => c.Length > 0).OrderByDescending(c => c.Length).Select(Regex.Escape).ToList();
        if (alternatives.Count > 0)
            _pattern = new Regex(string.Join("|", alternatives), RegexOptions.CultureInvariant | RegexOptions.Compiled);
    }

    /// <summary>Matches as (start, length, token): the span includes whitespace an lstrip/rstrip token takes.</summary>
    public IEnumerable<(int Start, int Length, AddedToken Token)> Matches(string text)
    {
        if (_pattern is null)
            yield break;
        int consumed = 0;
        foreach (Match m in _pattern.Matches(text))
        {
            var token = _byContent[m.Value];
            if (m.Index < consumed)
                continue;
            if (token.SingleWord && (IsWordChar(text, m.Index - 1) || IsWordChar(text, m.Index + m.Length)))
                continue;
            int start = m.Index, end = m.Index + m.Length;
            if (token.Lstrip)
                while (start > consumed && char.IsWhiteSpace(text[start - 1]))
                    start--;
            if (token.Rstrip)
                while (end < text.Length && char.IsWhiteSpace(text[end]))
                    end++;
            consumed = end;
            yield return (start, end - start, token);
        }
    }

    private static bool IsWordChar(string text, int index) => index >= 0 && index < text.Length && (char.IsLetterOrDigit(text[index]) || text[index] == '_');
}
