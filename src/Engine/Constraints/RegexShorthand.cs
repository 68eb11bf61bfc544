using System.Globalization;

namespace Serving.Engine.Constraints;

/// <summary>
/// The shorthand classes <c>\d \w \s</c> in two readings. Regex engines disagree on them (Python and .NET match Unicode
/// digits with <c>\d</c>, ECMAScript only ASCII), and a generated string must match under whichever engine the caller
/// checks with. So a class that includes them uses the <see cref="Narrow"/> reading (ASCII, a subset of every engine's),
/// and a class that excludes them (<c>\D</c>, <c>[^\d]</c>) the complement of the <see cref="Wide"/> reading (Unicode).
/// </summary>
internal static class RegexShorthand
{
    public static CodePointSet AsciiDigits { get; } = CodePointSet.Range('0', '9');
    public static CodePointSet AsciiWord { get; } = CodePointSet.Of([('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_')]);
    public static CodePointSet AsciiSpace { get; } = CodePointSet.Of([(' ', ' '), ('\t', '\r')]);

    private static readonly Lazy<CodePointSet> UnicodeDigits = new(() => Category(c => c == UnicodeCategory.DecimalDigitNumber));
    private static readonly Lazy<CodePointSet> UnicodeWord = new(() => Category(c => c is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
        or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark
        or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber
        or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber or UnicodeCategory.ConnectorPunctuation));
    private static readonly Lazy<CodePointSet> UnicodeSpace = new(() => Category(c => c is UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator
        or UnicodeCategory.ParagraphSeparator).Union(CodePointSet.Of([(' ', ' '), ('\t', '\r')])).Union(CodePointSet.Of([(0x85, 0x85), (0x1C, 0x1F)])));

    /// <summary>What every engine's <c>\d</c>/<c>\w</c>/<c>\s</c> (lower case letter) matches at least.</summary>
    public static CodePointSet Narrow(char letter) => char.ToLowerInvariant(letter) switch
    {
        'd' => AsciiDigits,
        'w' => AsciiWord,
        _ => AsciiSpace,
    };

    /// <summary>What any engine's <c>\d</c>/<c>\w</c>/<c>\s</c> may match.</summary>
    public static CodePointSet Wide(char letter) => char.ToLowerInvariant(letter) switch
    {
        'd' => UnicodeDigits.Value,
        'w' => UnicodeWord.Value,
        _ => UnicodeSpace.Value,
    };

    private static CodePointSet Category(Func<UnicodeCategory, bool> wanted)
    {
        var ranges = new List<(int, int)>();
        int start = -1;
        for (int c = 0; c <= CodePointSet.MaxCodePoint + 1; c++)
        {
            bool member = c <= CodePointSet.MaxCodePoint && (c < 0xD800 || c > 0xDFFF) && wanted(CharUnicodeInfo.GetUnicodeCategory(c));
            if (member && start < 0)
                start = c;
            else if (!member && start >= 0)
            {
                ranges.Add((start, c - 1));
                start = -1;
            }
        }

        return CodePointSet.Of(ranges);
    }
}
