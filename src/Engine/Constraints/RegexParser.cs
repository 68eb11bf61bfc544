using System.Globalization;

namespace Serving.Engine.Constraints;

/// <summary>
/// Parses the regular-expression subset whose language a token automaton can enforce exactly: literals, escapes, classes
/// (ranges, negation, <c>\d \w \s</c> and their negations), <c>.</c>, groups (capturing, <c>(?:)</c>, named), alternation,
/// and the quantifiers <c>* + ? {n} {n,} {n,m}</c> (lazy forms mean the same language). The match is always of the whole
/// output, so <c>^</c> and <c>$</c> are allowed at the pattern's ends only. Anything else (backreferences, lookaround,
/// word boundaries, inline flags, Unicode property classes) is a <see cref="ConstraintException"/> naming the construct
/// and its position, never silently read as something else.
/// </summary>
internal sealed class RegexParser
{
    public const int MaxRepeat = 1000;

    private static readonly CodePointSet AnyButNewline = CodePointSet.All.Except(CodePointSet.Of([('\n', '\n'), ('\r', '\r'), (0x2028, 0x2029)]));

    private readonly int[] _text;
    private readonly string _where;
    private int _at;

    private RegexParser(string pattern, string where)
    {
        _text = [.. pattern.EnumerateRunes().Select(r => r.Value)];
        _where = where;
    }

    /// <param name="pattern">The expression.</param>
    /// <param name="where">How errors name the pattern (<c>regex</c>, <c>$.properties.code.pattern</c>); the position follows.</param>
    public static RegexNode Parse(string pattern, string where)
    {
        var parser = new RegexParser(pattern, where);
        var node = parser.ParseAlternation(topLevel: true);
        if (parser._at < parser._text.Length)
            throw parser.Error(parser._text[parser._at] == ')' ? "unbalanced ')'" : $"unexpected '{parser.Show(parser._text[parser._at])}'");
        return node;
    }

    private ConstraintException Error(string message) => Error(message, _at);

    private ConstraintException Error(string message, int at) => new($"{_where}[{at}]", message);

    private bool AtEnd => _at >= _text.Length;
    private int Peek(int ahead = 0) => _at + ahead < _text.Length ? _text[_at + ahead] : -1;

    private string Show(int c) => c < 0 ? "end of pattern" : char.ConvertFromUtf32(c);

    private RegexNode ParseAlternation(bool topLevel)
    {
        var options = new List<RegexNode> { ParseSequence(topLevel) };
        while (Peek() == '|')
        {
            _at++;
            options.Add(ParseSequence(topLevel));
        }

        return options.Count == 1 ? options[0] : new RegexAlternation(options);
    }

    private RegexNode ParseSequence(bool topLevel)
    {
        var parts = new List<RegexNode>();
        while (!AtEnd && Peek() != '|' && Peek() != ')')
        {
            if (Peek() == '^')
            {
                if (!topLevel || parts.Count > 0)
                    throw Error("'^' is supported only at the start of the pattern (the whole output must match)");
                _at++;
                continue;
            }

            if (Peek() == '$')
            {
                _at++;
                if (!topLevel || !(AtEnd || Peek() == '|'))
                    throw Error("'$' is supported only at the end of the pattern (the whole output must match)", _at - 1);
                continue;
            }

            parts.Add(ParseQuantified(ParseAtom()));
        }

        return parts.Count == 1 ? parts[0] : new RegexSequence(parts);
    }

    private RegexNode ParseQuantified(RegexNode atom)
    {
        while (true)
        {
            int quantifier = _at;
            (int Min, int? Max)? q;
            if (Peek() == '{')
                q = TryCounted();
            else
            {
                q = Peek() switch
                {
                    '*' => (0, null),
                    '+' => (1, null),
                    '?' => (0, 1),
                    _ => null,
                };
                if (q is not null)
                    _at++;
            }

            if (q is null)
                return atom;
            if (Peek() == '?')
                _at++;                                     // lazy: the same language
            else if (Peek() == '+')
                throw Error("possessive quantifiers are not supported");
            var (min, max) = q.Value;
            if (min > MaxRepeat || max > MaxRepeat)
                throw Error($"repetition counts above {MaxRepeat} are not supported", quantifier);
            if (max < min)
                throw Error($"repetition {{{min},{max}}} has its maximum below its minimum", quantifier);
            atom = new RegexRepeat(atom, min, max);
        }
    }

    /// <summary>A counted quantifier at '{', consumed; or null (and nothing consumed) when the brace is a literal, as in Python.</summary>
    private (int, int?)? TryCounted()
    {
        int save = _at;
        _at++;
        int? min = Number();
        int? max = min;
        if (Peek() == ',')
        {
            _at++;
            max = Number();
        }

        if (min is null || Peek() != '}')
        {
            _at = save;
            return null;
        }

        _at++;
        return (min.Value, max);
    }

    private int? Number()
    {
        int start = _at;
        long value = 0;
        while (Peek() is >= '0' and <= '9')
        {
            value = Math.Min(value * 10 + (Peek() - '0'), int.MaxValue);
            _at++;
        }

        return _at > start ? (int)value : null;
    }

    private RegexNode ParseAtom()
    {
        int c = Peek();
        switch (c)
        {
            case '(':
                return ParseGroup();
            case '[':
                return new RegexChars(ParseClass());
            case '.':
                _at++;
                return new RegexChars(AnyButNewline);
            case '\\':
                _at++;
                var (narrow, _) = ParseEscape(inClass: false);
                return new RegexChars(narrow);
            case '*' or '+' or '?':
                throw Error($"'{(char)c}' has nothing to repeat");
            case '{' when TryCounted() is not null:
                throw Error("a repetition has nothing to repeat");
            default:
                _at++;
                return new RegexChars(CodePointSet.Single(c));
        }
    }

    private RegexNode ParseGroup()
    {
        int open = _at;
        _at++;
        if (Peek() == '?')
        {
            int kind = Peek(1);
            if (kind == ':')
                _at += 2;
            else if (kind == 'P' && Peek(2) == '<' || kind == '<' && Peek(2) != '=' && Peek(2) != '!')
            {
                while (!AtEnd && Peek() != '>')
                    _at++;
                if (AtEnd)
                    throw Error("unterminated group name");
                _at++;
            }
            else if (kind is '=' or '!' || kind == '<')
                throw Error("lookaround assertions are not supported", open);
            else
                throw Error($"group construct '(?{Show(kind)}' is not supported (inline flags, conditionals, comments)", open);
        }

        var inner = ParseAlternation(topLevel: false);
        if (Peek() != ')')
            throw Error("missing ')'");
        _at++;
        return inner;
    }

    private CodePointSet ParseClass()
    {
        _at++;
        bool negated = Peek() == '^';
        if (negated)
            _at++;
        var narrow = new List<CodePointSet>();
        var wide = new List<CodePointSet>();
        bool first = true;
        while (Peek() != ']' || first)
        {
            if (AtEnd)
                throw Error("missing ']'");
            if (Peek() == '[' && Peek(1) == ':')
                throw Error("POSIX classes such as [:alpha:] are not supported");
            first = false;
            int itemStart = _at;
            var (lowNarrow, lowWide, single) = ClassItem();
            if (single is int lo && Peek() == '-' && Peek(1) != ']' && Peek(1) >= 0)
            {
                _at++;
                var (_, _, hiSingle) = ClassItem();
                if (hiSingle is not int hi)
                    throw Error("a class range must end in a single character");
                if (hi < lo)
                    throw Error($"class range '{Show(lo)}-{Show(hi)}' is out of order", itemStart);
                narrow.Add(CodePointSet.Range(lo, hi));
                wide.Add(CodePointSet.Range(lo, hi));
                continue;
            }

            narrow.Add(lowNarrow);
            wide.Add(lowWide);
        }

        _at++;
        return negated ? CodePointSet.Of(wide.SelectMany(s => s.Ranges)).Complement() : CodePointSet.Of(narrow.SelectMany(s => s.Ranges));
    }

    private (CodePointSet Narrow, CodePointSet Wide, int? Single) ClassItem()
    {
        int c = Peek();
        _at++;
        if (c != '\\')
            return (CodePointSet.Single(c), CodePointSet.Single(c), c);
        var (narrow, wide) = ParseEscape(inClass: true);
        return (narrow, wide, narrow.Ranges is [var (lo, hi)] && lo == hi && ReferenceEquals(narrow, wide) ? lo : null);
    }

    /// <summary>After a backslash: the escape's (narrow, wide) readings; the same set object for a single character.</summary>
    private (CodePointSet Narrow, CodePointSet Wide) ParseEscape(bool inClass)
    {
        int backslash = _at - 1;
        if (AtEnd)
            throw Error("pattern ends in a lone backslash", backslash);
        int c = Peek();
        _at++;
        switch (c)
        {
            case 'd' or 'w' or 's':
                return (RegexShorthand.Narrow((char)c), RegexShorthand.Wide((char)c));
            case 'D' or 'W' or 'S':
                return (RegexShorthand.Wide((char)c).Complement(), RegexShorthand.Narrow((char)c).Complement());
            case 'n': return Same('\n');
            case 't': return Same('\t');
            case 'r': return Same('\r');
            case 'f': return Same('\f');
            case 'v': return Same('\v');
            case '0': return Same(0);
            case 'b' when inClass: return Same('\b');
            case 'x': return Same(Hex(2));
            case 'u' when Peek() == '{':
            {
                _at++;
                int start = _at;
                while (!AtEnd && Peek() != '}')
                    _at++;
                if (AtEnd || !int.TryParse(string.Concat(_text[start.._at].Select(char.ConvertFromUtf32)), NumberStyles.HexNumber, null, out int v) || v > CodePointSet.MaxCodePoint)
                    throw Error("malformed \\u{...} escape");
                _at++;
                return Same(v);
            }
            case 'u': return Same(Hex(4));
            case 'U': return Same(Hex(8));
            case 'p' or 'P':
                throw Error("Unicode property classes (\\p{...}) are not supported", backslash);
            case 'b' or 'B' or 'A' or 'Z' or 'z' or 'G':
                throw Error($"the assertion '\\{(char)c}' is not supported", backslash);
            case >= '1' and <= '9':
                throw Error("backreferences are not supported", backslash);
            case 'k':
                throw Error("named backreferences are not supported", backslash);
            default:
                if (c < 128 && char.IsAsciiLetterOrDigit((char)c))
                    throw Error($"unknown escape '\\{(char)c}'", backslash);
                return Same(c);                            // an escaped punctuation or non-ASCII character stands for itself
        }
    }

    private static (CodePointSet, CodePointSet) Same(int c)
    {
        var set = CodePointSet.Single(c);
        return (set, set);
    }

    private int Hex(int digits)
    {
        if (_at + digits > _text.Length || !int.TryParse(string.Concat(_text[_at..(_at + digits)].Select(char.ConvertFromUtf32)), NumberStyles.HexNumber, null, out int v)
            || v > CodePointSet.MaxCodePoint)
            throw Error($"malformed hex escape (expected {digits} hex digits)");
        _at += digits;
        return v;
    }
}
