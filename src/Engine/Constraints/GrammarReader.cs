namespace Serving.Engine.Constraints;

/// <summary>
/// What the grammar notations (<see cref="GrammarParser"/>'s GBNF, <see cref="LarkGrammarParser"/>'s Lark) read alike:
/// the text as code points and a position in it, the rules read so far and the references to check once all are read,
/// alternations, counts, and character escapes. Errors are <see cref="ConstraintException"/>s at <c>grammar[position]</c>.
/// </summary>
internal abstract class GrammarReader
{
    protected const string Where = "grammar";

    private readonly Dictionary<string, int> _referencedAt = new(StringComparer.Ordinal);

    protected GrammarReader(string grammar)
    {
        Text = [.. grammar.EnumerateRunes().Select(r => r.Value)];
        Expansion = new GrammarExpansion(Rules);
    }

    protected int[] Text { get; }
    protected Dictionary<string, RegexNode> Rules { get; } = new(StringComparer.Ordinal);
    protected GrammarExpansion Expansion { get; }

    /// <summary>The position read up to.</summary>
    protected int At { get; set; }

    /// <summary>After every rule is read: the start rule's expansion, once it and every rule used exist.</summary>
    protected RegexNode Finish(string start, string whatStartIs)
    {
        if (!Rules.ContainsKey(start))
            throw new ConstraintException(Where, $"there is no '{start}' rule ({whatStartIs})");
        foreach (var (name, at) in _referencedAt)
            if (!Rules.ContainsKey(name))
                throw Error($"the rule '{name}' is used but never defined", at);
        return new GrammarRuleRef(start, Expansion);
    }

    /// <summary>A reference to <paramref name="name"/> at <paramref name="at"/>, checked in <see cref="Finish"/>.</summary>
    protected RegexNode Reference(string name, int at)
    {
        _referencedAt.TryAdd(name, at);
        return new GrammarRuleRef(name, Expansion);
    }

    protected ConstraintException Error(string message, int at) => new($"{Where}[{at}]", message);

    protected ConstraintException Error(string message) => Error(message, At);

    protected int Peek(int ahead = 0) => At + ahead < Text.Length ? Text[At + ahead] : -1;

    protected static string Show(int c) => c < 0 ? "end of grammar" : char.ConvertFromUtf32(c);

    protected string Slice(int from, int to) => string.Concat(Text[from..to].Select(char.ConvertFromUtf32));

    /// <summary>A sequence of the notation's items, up to what ends it (an alternative's bar, a group's close, the next rule).</summary>
    protected abstract RegexNode ParseSequence();

    protected RegexNode ParseAlternation()
    {
        var options = new List<RegexNode> { ParseSequence() };
        while (Peek() == '|')
        {
            At++;
            options.Add(ParseSequence());
        }

        return options.Count == 1 ? options[0] : new RegexAlternation(options);
    }

    /// <summary>A reference to the rule whose name <paramref name="parseName"/> reads here, else an error naming what is here.</summary>
    protected RegexNode ReferenceHere(Func<string?> parseName)
    {
        int at = At;
        return parseName() is string name ? Reference(name, at) : throw Error($"unexpected '{Show(Peek())}'");
    }

    /// <summary><paramref name="node"/> under the postfix <c>*</c>, <c>+</c> or <c>?</c> here (read), else null.</summary>
    protected RegexNode? Postfix(RegexNode node)
    {
        int c = Peek();
        if (c is not ('*' or '+' or '?'))
            return null;
        At++;
        return new RegexRepeat(node, c == '+' ? 1 : 0, c == '?' ? 1 : null);
    }

    /// <summary>Decimal digits (at most nine), or null when none are here.</summary>
    protected int? ParseCount()
    {
        int start = At;
        while (Peek() is >= '0' and <= '9' && At - start < 9)
            At++;
        return At == start ? null : int.Parse(Slice(start, At), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// One character of a literal, its escape read: <c>\n \r \t \f \xHH \uHHHH \UHHHHHHHH</c>, and a backslash before any
    /// of <paramref name="literal"/> standing for that character.
    /// </summary>
    protected int ParseChar(string literal)
    {
        int c = Peek();
        At++;
        if (c != '\\')
            return c;
        int escaped = Peek();
        At++;
        return escaped switch
        {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'f' => '\f',
            'x' => Hex(2),
            'u' => Hex(4),
            'U' => Hex(8),
            _ when escaped >= 0 && literal.Contains((char)escaped, StringComparison.Ordinal) => escaped,
            _ => throw Error($"unknown escape '\\{Show(escaped)}'", At - 2),
        };
    }

    private int Hex(int digits)
    {
        int start = At, value = 0;
        for (int i = 0; i < digits; i++, At++)
        {
            int d = Peek();
            int v = d is >= '0' and <= '9' ? d - '0' : d is >= 'a' and <= 'f' ? d - 'a' + 10 : d is >= 'A' and <= 'F' ? d - 'A' + 10 : -1;
            if (v < 0)
                throw Error($"expected {digits} hexadecimal digits", start);
            value = value * 16 + v;
        }

        return value <= CodePointSet.MaxCodePoint ? value : throw Error("the escaped code point is beyond U+10FFFF", start);
    }
}
