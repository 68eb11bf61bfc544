using System.Globalization;

namespace Serving.Engine.Constraints;

/// <summary>
/// Parses a context-free grammar in GBNF (llama.cpp's notation, which vLLM's <c>grammar</c> takes through xgrammar):
/// rules <c>name ::= alternatives</c>, the start rule <c>root</c>; string literals in double or single quotes and
/// character classes <c>[a-z]</c> / <c>[^"\\]</c> with the escapes <c>\n \r \t \\ \" \' \[ \] \- \^ \xHH \uHHHH
/// \UHHHHHHHH</c>; <c>.</c> (any character); rule references; groups; <c>|</c>; the quantifiers <c>* + ? {m} {m,}
/// {m,n}</c>; <c># comments</c>. Any other construct is a <see cref="ConstraintException"/> naming it and its position.
/// <para>
/// The grammar becomes a token automaton like a regular expression does: every reference expands its rule in place, and
/// a rule recursing into itself is unrolled <see cref="MaxRecursion"/> levels deep (the branches that would need more
/// disappear, as recursive JSON Schema references do). Within that depth the language is enforced exactly.
/// </para>
/// </summary>
internal sealed class GrammarParser
{
    /// <summary>How often a rule may appear in its own expansion: the nesting depth of recursive rules.</summary>
    public const int MaxRecursion = 5;

    private const string Where = "grammar";
    private readonly int[] _text;
    private readonly Dictionary<string, RegexNode> _rules = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _referencedAt = new(StringComparer.Ordinal);
    private readonly GrammarExpansion _expansion;
    private int _at;

    private GrammarParser(string grammar)
    {
        _text = [.. grammar.EnumerateRunes().Select(r => r.Value)];
        _expansion = new GrammarExpansion(_rules, MaxRecursion);
    }

    /// <summary>The grammar's language as a node whose build expands <c>root</c>.</summary>
    public static RegexNode Parse(string grammar)
    {
        var parser = new GrammarParser(grammar);
        parser.ParseRules();
        if (!parser._rules.ContainsKey("root"))
            throw new ConstraintException(Where, "there is no 'root' rule (the grammar's start)");
        foreach (var (name, at) in parser._referencedAt)
            if (!parser._rules.ContainsKey(name))
                throw parser.Error($"the rule '{name}' is used but never defined", at);
        return new GrammarRuleRef("root", parser._expansion);
    }

    private ConstraintException Error(string message, int at) => new($"{Where}[{at}]", message);

    private ConstraintException Error(string message) => Error(message, _at);

    private int Peek(int ahead = 0) => _at + ahead < _text.Length ? _text[_at + ahead] : -1;

    private string Show(int c) => c < 0 ? "end of grammar" : char.ConvertFromUtf32(c);

    private void ParseRules()
    {
        SkipSpace();
        if (_at >= _text.Length)
            throw Error("the grammar is empty");
        while (_at < _text.Length)
        {
            int start = _at;
            string name = ParseName() ?? throw Error($"expected a rule name, found '{Show(Peek())}'");
            SkipSpace();
            if (!(Peek() == ':' && Peek(1) == ':' && Peek(2) == '='))
                throw Error($"expected '::=' after the rule name '{name}'");
            _at += 3;
            if (_rules.ContainsKey(name))
                throw Error($"the rule '{name}' is defined twice", start);
            _rules[name] = ParseAlternation();
            SkipSpace();
        }
    }

    private string? ParseName()
    {
        int start = _at;
        while (Peek() is int c && (c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '_' or '-' or '.'))
            _at++;
        return _at > start ? string.Concat(_text[start.._at].Select(char.ConvertFromUtf32)) : null;
    }

    /// <summary>Whitespace (line breaks included) and comments.</summary>
    private void SkipSpace()
    {
        while (_at < _text.Length)
        {
            if (Peek() == '#')
                while (_at < _text.Length && Peek() != '\n')
                    _at++;
            else if (Peek() is ' ' or '\t' or '\r' or '\n')
                _at++;
            else
                return;
        }
    }

    /// <summary>Whether a rule definition starts here (<c>name ::=</c>), which ends the previous rule.</summary>
    private bool AtRuleStart()
    {
        int saved = _at;
        try
        {
            if (ParseName() is null)
                return false;
            SkipSpace();
            return Peek() == ':' && Peek(1) == ':' && Peek(2) == '=';
        }
        finally
        {
            _at = saved;
        }
    }

    private RegexNode ParseAlternation()
    {
        var options = new List<RegexNode> { ParseSequence() };
        while (Peek() == '|')
        {
            _at++;
            options.Add(ParseSequence());
        }

        return options.Count == 1 ? options[0] : new RegexAlternation(options);
    }

    private RegexNode ParseSequence()
    {
        var parts = new List<RegexNode>();
        while (true)
        {
            SkipSpace();
            if (_at >= _text.Length || Peek() is '|' or ')' || AtRuleStart())
                return parts.Count == 1 ? parts[0] : new RegexSequence(parts);
            parts.Add(ParseQuantified(ParsePrimary()));
        }
    }

    private RegexNode ParsePrimary()
    {
        int c = Peek();
        switch (c)
        {
            case '"' or '\'':
                return ParseLiteral((char)c);
            case '[':
                return new RegexChars(ParseClass());
            case '.':
                _at++;
                return new RegexChars(CodePointSet.All);
            case '(':
                int open = _at++;
                var inner = ParseAlternation();
                SkipSpace();
                if (Peek() != ')')
                    throw Error("this '(' is never closed", open);
                _at++;
                return inner;
        }

        int at = _at;
        if (ParseName() is string name)
        {
            _referencedAt.TryAdd(name, at);
            return new GrammarRuleRef(name, _expansion);
        }

        throw Error($"unexpected '{Show(c)}'");
    }

    private RegexNode ParseQuantified(RegexNode node)
    {
        while (true)
        {
            int c = Peek();
            if (c is '*' or '+' or '?')
            {
                _at++;
                node = new RegexRepeat(node, c == '+' ? 1 : 0, c == '?' ? 1 : null);
            }
            else if (c == '{')
            {
                int open = _at++;
                int min = ParseCount() ?? throw Error("expected a count after '{'", open);
                int? max = min;
                if (Peek() == ',')
                {
                    _at++;
                    max = ParseCount();
                }

                if (Peek() != '}')
                    throw Error("expected '}' to close the repetition", open);
                _at++;
                if (max < min || min > RegexParser.MaxRepeat || max > RegexParser.MaxRepeat)
                    throw Error($"the repetition {{{min},{max}}} must have min ≤ max ≤ {RegexParser.MaxRepeat}", open);
                node = new RegexRepeat(node, min, max);
            }
            else
            {
                return node;
            }
        }
    }

    private int? ParseCount()
    {
        int start = _at;
        while (Peek() is >= '0' and <= '9')
            _at++;
        return _at == start ? null
            : int.TryParse(string.Concat(_text[start.._at].Select(d => (char)d)), NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n
            : throw Error("the count is too large", start);
    }

    private RegexNode ParseLiteral(char quote)
    {
        int open = _at++;
        var chars = new List<RegexNode>();
        while (Peek() != quote)
        {
            if (Peek() < 0)
                throw Error("this string is never closed", open);
            chars.Add(new RegexChars(CodePointSet.Single(ParseChar())));
        }

        _at++;
        return new RegexSequence(chars);
    }

    private CodePointSet ParseClass()
    {
        int open = _at++;
        bool negated = Peek() == '^';
        if (negated)
            _at++;
        var ranges = new List<(int, int)>();
        while (Peek() != ']')
        {
            if (Peek() < 0)
                throw Error("this '[' is never closed", open);
            int from = _at;
            int lo = ParseChar();
            int hi = lo;
            if (Peek() == '-' && Peek(1) is not ']' and >= 0)
            {
                _at++;
                hi = ParseChar();
                if (hi < lo)
                    throw Error($"the range {Show(lo)}-{Show(hi)} is reversed", from);
            }

            ranges.Add((lo, hi));
        }

        _at++;
        var set = CodePointSet.Of(ranges);
        return negated ? set.Complement() : set;
    }

    /// <summary>One character of a literal or a class, escapes read.</summary>
    private int ParseChar()
    {
        int c = Peek();
        _at++;
        if (c != '\\')
            return c;
        int escaped = Peek();
        _at++;
        return escaped switch
        {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            '\\' or '"' or '\'' or '[' or ']' or '-' or '^' or '/' => escaped,
            'x' => Hex(2),
            'u' => Hex(4),
            'U' => Hex(8),
            _ => throw Error($"unknown escape '\\{Show(escaped)}'", _at - 2),
        };
    }

    private int Hex(int digits)
    {
        int start = _at, value = 0;
        for (int i = 0; i < digits; i++, _at++)
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
