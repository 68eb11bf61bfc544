using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Serving.Engine.Tokenization;

/// <summary>
/// A pre-tokenizer regex matched on code points, as the Rust <c>tokenizers</c> library (Oniguruma) matches it. .NET's
/// regex sees UTF-16 units, so <c>\p{L}</c> or <c>\p{N}</c> never match a character outside the BMP (𝟏, 𐍈, most emoji
/// are two units of category Cs). Each such character is matched as a stand-in BMP character of the same general
/// category, and the match bounds are mapped back: the patterns real tokenizers use test categories and ASCII literals
/// only, so the matches are the ones the code points would give.
/// </summary>
internal sealed class CodePointRegex(string pattern)
{
    private readonly Regex _regex = new(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);

    /// <summary>One BMP character per general category (none of them ASCII, whitespace or a line break).</summary>
    private static readonly Dictionary<UnicodeCategory, char> StandIns = new()
    {
        [UnicodeCategory.UppercaseLetter] = 'À', [UnicodeCategory.LowercaseLetter] = 'à', [UnicodeCategory.TitlecaseLetter] = 'ǅ',
        [UnicodeCategory.ModifierLetter] = 'ʰ', [UnicodeCategory.OtherLetter] = 'ª', [UnicodeCategory.NonSpacingMark] = '\u0300',
        [UnicodeCategory.SpacingCombiningMark] = '\u0903', [UnicodeCategory.EnclosingMark] = '\u20DD', [UnicodeCategory.DecimalDigitNumber] = '٠',
        [UnicodeCategory.LetterNumber] = 'Ⅰ', [UnicodeCategory.OtherNumber] = '²', [UnicodeCategory.ConnectorPunctuation] = '‿',
        [UnicodeCategory.DashPunctuation] = '‐', [UnicodeCategory.OpenPunctuation] = '⁅', [UnicodeCategory.ClosePunctuation] = '⁆',
        [UnicodeCategory.InitialQuotePunctuation] = '«', [UnicodeCategory.FinalQuotePunctuation] = '»', [UnicodeCategory.OtherPunctuation] = '¡',
        [UnicodeCategory.MathSymbol] = '¬', [UnicodeCategory.CurrencySymbol] = '¢', [UnicodeCategory.ModifierSymbol] = '¨',
        [UnicodeCategory.OtherSymbol] = '©', [UnicodeCategory.Format] = '\u00AD', [UnicodeCategory.PrivateUse] = '\uE000',
        [UnicodeCategory.OtherNotAssigned] = '\u0378',
    };

    /// <summary>The (start, length) of every match, in UTF-16 units of <paramref name="text"/>.</summary>
    public IEnumerable<(int Start, int Length)> Matches(string text)
    {
        if (!HasSurrogates(text))
        {
            foreach (Match m in _regex.Matches(text))
                yield return (m.Index, m.Length);
            yield break;
        }

        // offsets[i]: where the stand-in string's unit i starts in the text (one extra entry for the end).
        var standIn = new StringBuilder(text.Length);
        var offsets = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length; i++)
        {
            offsets.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var category = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]));
                standIn.Append(StandIns.GetValueOrDefault(category, '\u0378'));
                i++;
            }
            else
            {
                standIn.Append(text[i]);
            }
        }

        offsets.Add(text.Length);
        foreach (Match m in _regex.Matches(standIn.ToString()))
            yield return (offsets[m.Index], offsets[m.Index + m.Length] - offsets[m.Index]);
    }

    private static bool HasSurrogates(string text)
    {
        foreach (char c in text)
            if (char.IsSurrogate(c))
                return true;
        return false;
    }
}
