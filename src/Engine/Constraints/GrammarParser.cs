namespace Serving.Engine.Constraints;

/// <summary>
/// Parses a context-free grammar in GBNF (llama.cpp's notation, which vLLM's <c>grammar</c> takes through xgrammar):
/// rules <c>name ::= alternatives</c>, the start rule <c>root</c>; string literals in double or single quotes and
/// character classes <c>[a-z]</c> / <c>[^"\\]</c> with the escapes <c>\n \r \t \\ \" \' \[ \] \- \^ \xHH \uHHHH
/// \UHHHHHHHH</c>; <c>.</c> (any character); rule references; groups; <c>|</c>; the quantifiers <c>* + ? {m} {m,}
/// {m,n}</c>; <c># comments</c>. Any other construct is a <see cref="ConstraintException"/> naming it and its position.
/// <para>
/// The grammar becomes a token automaton like a regular expression does: every reference expands its rule in place,
/// except a reference inside the rule's own expansion, which calls the rule's machine (<see cref="GrammarExpansion"/>):
/// the language is the grammar's, context-free, nesting without a bound.
/// </para>
/// </summary>
internal sealed class GrammarParser : GrammarReader
{
    /// <summary>Characters a backslash stands before for themselves, in literals and classes.</summary>
    private const string Escapable = "\\\"'[]-^/";

    private GrammarParser(string grammar)
        : base(grammar)
    {
    }

    /// <summary>The grammar's language as a node whose build expands <c>root</c>.</summary>
    public static RegexNode Parse(string grammar)
    {
        var parser = new GrammarParser(grammar);
        parser.ParseRules();
        return parser.Finish("root", "the grammar's start");
    }

    private void ParseRules()
    {
        SkipSpace();
        if (At >= Text.Length)
            throw Error("the grammar is empty");
        while (At < Text.Length)
        {
            int start = At;
            string name = ParseName() ?? throw Error($"expected a rule name, found '{Show(Peek())}'");
            SkipSpace();
            if (!(Peek() == ':' && Peek(1) == ':' && Peek(2) == '='))
                throw Error($"expected '::=' after the rule name '{name}'");
            At += 3;
            if (Rules.ContainsKey(name))
                throw Error($"the rule '{name}' is defined twice", start);
            Rules[name] = ParseAlternation();
            SkipSpace();
        }
    }

    private string? ParseName()
    {
        int start = At;
        while (Peek() is int c && (c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '_' or '-' or '.'))
            At++;
        return At > start ? Slice(start, At) : null;
    }

    /// <summary>Whitespace (line breaks included) and comments.</summary>
    private void SkipSpace()
    {
        while (At < Text.Length)
        {
            if (Peek() == '#')
                while (At < Text.Length && Peek() != '\n')
                    At++;
            else if (Peek() is ' ' or '\t' or '\r' or '\n')
                At++;
            else
                return;
        }
    }

    /// <summary>Whether a rule definition starts here (<c>name ::=</c>), which ends the previous rule.</summary>
    private bool AtRuleStart()
    {
        int saved = At;
        try
        {
            if (ParseName() is null)
                return false;
            SkipSpace();
            return Peek() == ':' && Peek(1) == ':' && Peek(2) == '=';
        }
        finally
        {
            At = saved;
        }
    }

    protected override RegexNode ParseSequence()
    {
        var parts = new List<RegexNode>();
        while (true)
        {
            SkipSpace();
            if (At >= Text.Length || Peek() is '|' or ')' || AtRuleStart())
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
                At++;
                return new RegexChars(CodePointSet.All);
            case '(':
                int open = At++;
                var inner = ParseAlternation();
                SkipSpace();
                if (Peek() != ')')
                    throw Error("this '(' is never closed", open);
                At++;
                return inner;
        }

        return ReferenceHere(ParseName);
    }

    private RegexNode ParseQuantified(RegexNode node)
    {
        while (true)
        {
            if (Postfix(node) is { } repeated)
                node = repeated;
            else if (Peek() == '{')
            {
                int open = At++;
                int min = ParseCount() ?? throw Error("expected a count after '{'", open);
                int? max = min;
                if (Peek() == ',')
                {
                    At++;
                    max = ParseCount();
                }

                if (Peek() != '}')
                    throw Error("expected '}' to close the repetition", open);
                At++;
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

    private RegexNode ParseLiteral(char quote)
    {
        int open = At++;
        var chars = new List<RegexNode>();
        while (Peek() != quote)
        {
            if (Peek() < 0)
                throw Error("this string is never closed", open);
            chars.Add(new RegexChars(CodePointSet.Single(ParseChar(Escapable))));
        }

        At++;
        return new RegexSequence(chars);
    }

    private CodePointSet ParseClass()
    {
        int open = At++;
        bool negated = Peek() == '^';
        if (negated)
            At++;
        var ranges = new List<(int, int)>();
        while (Peek() != ']')
        {
            if (Peek() < 0)
                throw Error("this '[' is never closed", open);
            int from = At;
            int lo = ParseChar(Escapable);
            int hi = lo;
            if (Peek() == '-' && Peek(1) is not ']' and >= 0)
            {
                At++;
                hi = ParseChar(Escapable);
                if (hi < lo)
                    throw Error($"the range {Show(lo)}-{Show(hi)} is reversed", from);
            }

            ranges.Add((lo, hi));
        }

        At++;
        var set = CodePointSet.Of(ranges);
        return negated ? set.Complement() : set;
    }
}
