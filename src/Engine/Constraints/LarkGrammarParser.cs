namespace Serving.Engine.Constraints;

/// <summary>
/// Parses the Lark grammar subset vLLM converts for its grammar backends: rules and terminals <c>name: alternatives</c>
/// (<c>?name</c>, <c>!name</c> and <c>NAME.2</c> read as plain names), continuation lines starting with <c>|</c>, the start
/// rule <c>start</c>; string literals in double or single quotes (with the <c>i</c> flag: any letter case), character
/// ranges <c>"a".."z"</c>, <c>/regular expressions/</c> (the <c>regex</c> subset), groups, <c>[optional]</c>,
/// <c>* + ?</c>, <c>~ n</c> and <c>~ n..m</c>, <c>//</c> comments, and <c>%import common.NAME</c> (or
/// <c>common (A, B)</c>) for the common terminals. <c>%ignore</c> — text the parser skips anywhere — and
/// <c>%declare</c> / <c>%override</c> are refused naming them. The result expands like a GBNF grammar
/// (<see cref="GrammarParser"/>): recursion unrolled <see cref="GrammarParser.MaxRecursion"/> levels deep.
/// </summary>
internal sealed class LarkGrammarParser
{
    private const string Where = "grammar";

    /// <summary>Lark's <c>common</c> terminals, as regular expressions of this engine's subset.</summary>
    private static readonly Dictionary<string, string> Common = new(StringComparer.Ordinal)
    {
        ["DIGIT"] = "[0-9]", ["HEXDIGIT"] = "[a-fA-F0-9]", ["INT"] = "[0-9]+", ["SIGNED_INT"] = "[+-]?[0-9]+",
        ["DECIMAL"] = @"[0-9]+\.[0-9]*|\.[0-9]+",
        ["FLOAT"] = @"[0-9]+[eE][+-]?[0-9]+|([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?",
        ["NUMBER"] = @"[0-9]+[eE][+-]?[0-9]+|([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+",
        ["SIGNED_NUMBER"] = @"[+-]?([0-9]+[eE][+-]?[0-9]+|([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+)",
        ["LETTER"] = "[A-Za-z]", ["LCASE_LETTER"] = "[a-z]", ["UCASE_LETTER"] = "[A-Z]", ["WORD"] = "[A-Za-z]+",
        ["CNAME"] = "[_A-Za-z][_A-Za-z0-9]*", ["WS_INLINE"] = "[ \t]+", ["WS"] = "[ \t\f\r\n]+", ["NEWLINE"] = @"(\r?\n)+",
        ["ESCAPED_STRING"] = "\"([^\"\\\\]|\\\\.)*\"",
    };

    private readonly int[] _text;
    private readonly Dictionary<string, RegexNode> _rules = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _referencedAt = new(StringComparer.Ordinal);
    private readonly GrammarExpansion _expansion;
    private int _at;

    private LarkGrammarParser(string grammar)
    {
        _text = [.. grammar.EnumerateRunes().Select(r => r.Value)];
        _expansion = new GrammarExpansion(_rules, GrammarParser.MaxRecursion);
    }

    /// <summary>Whether <paramref name="grammar"/> reads as Lark rather than GBNF: it defines rules with ':' and never with '::='.</summary>
    public static bool LooksLikeLark(string grammar) =>
        !grammar.Contains("::=", StringComparison.Ordinal)
        && System.Text.RegularExpressions.Regex.IsMatch(grammar, @"(?m)^\s*[?!]?[A-Za-z_][A-Za-z_0-9]*(\.\d+)?\s*:");

    /// <summary>The grammar's language as a node whose build expands <c>start</c>.</summary>
    public static RegexNode Parse(string grammar)
    {
        var parser = new LarkGrammarParser(grammar);
        parser.ParseDefinitions();
        if (!parser._rules.ContainsKey("start"))
            throw new ConstraintException(Where, "there is no 'start' rule (a Lark grammar's start)");
        foreach (var (name, at) in parser._referencedAt)
            if (!parser._rules.ContainsKey(name))
                throw parser.Error($"the rule '{name}' is used but never defined", at);
        return new GrammarRuleRef("start", parser._expansion);
    }

    private ConstraintException Error(string message, int at) => new($"{Where}[{at}]", message);

    private ConstraintException Error(string message) => Error(message, _at);

    private int Peek(int ahead = 0) => _at + ahead < _text.Length ? _text[_at + ahead] : -1;

    private string Show(int c) => c < 0 ? "end of grammar" : char.ConvertFromUtf32(c);

    private string Slice(int from, int to) => string.Concat(_text[from..to].Select(char.ConvertFromUtf32));

    private void ParseDefinitions()
    {
        SkipSpace();
        if (_at >= _text.Length)
            throw Error("the grammar is empty");
        while (_at < _text.Length)
        {
            if (Peek() == '%')
                ParseDirective();
            else
            {
                int start = _at;
                if (Peek() is '?' or '!')
                    _at++;
                string name = ParseName() ?? throw Error($"expected a rule name, found '{Show(Peek())}'");
                SkipPriority();
                SkipSpace();
                if (Peek() != ':')
                    throw Error($"expected ':' after the rule name '{name}'");
                _at++;
                if (_rules.ContainsKey(name))
                    throw Error($"the rule '{name}' is defined twice", start);
                _rules[name] = ParseAlternation();
            }

            SkipSpace();
        }
    }

    private void ParseDirective()
    {
        int start = _at++;
        string directive = ParseName() ?? "";
        if (directive != "import")
            throw Error(directive == "ignore"
                ? "Lark's %ignore (text skipped anywhere between tokens) is not supported: write the whitespace into the rules"
                : $"the directive %{directive} is not supported", start);
        SkipInlineSpace();
        string module = ParseName() ?? "";
        if (module != "common")
            throw Error($"only %import common is supported, not '{module}'", start);
        var names = new List<string>();
        if (Peek() == '.')
        {
            _at++;
            names.Add(ParseName() ?? throw Error("expected a terminal name after 'common.'"));
        }
        else
        {
            SkipInlineSpace();
            if (Peek() != '(')
                throw Error("expected '.NAME' or '(NAME, …)' after %import common");
            do
            {
                _at++;
                SkipInlineSpace();
                names.Add(ParseName() ?? throw Error("expected a terminal name"));
                SkipInlineSpace();
            }
            while (Peek() == ',');
            if (Peek() != ')')
                throw Error("expected ')' to close the import list");
            _at++;
        }

        foreach (string name in names)
            _rules[name] = Common.TryGetValue(name, out var pattern) ? RegexParser.Parse(pattern, $"common.{name}")
                : throw Error($"common.{name} is not one of the common terminals ({string.Join(", ", Common.Keys)})", start);
    }

    private string? ParseName()
    {
        int start = _at;
        while (Peek() is int c && (c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '_') && !(_at == start && c is >= '0' and <= '9'))
            _at++;
        return _at > start ? Slice(start, _at) : null;
    }

    private void SkipPriority()
    {
        if (Peek() == '.' && Peek(1) is >= '0' and <= '9')
            for (_at++; Peek() is >= '0' and <= '9'; _at++)
            {
            }
    }

    private void SkipInlineSpace()
    {
        while (Peek() is ' ' or '\t')
            _at++;
    }

    /// <summary>Whitespace (line breaks included) and <c>//</c> comments.</summary>
    private void SkipSpace()
    {
        while (_at < _text.Length)
        {
            if (Peek() == '/' && Peek(1) == '/')
                while (_at < _text.Length && Peek() != '\n')
                    _at++;
            else if (Peek() is ' ' or '\t' or '\r' or '\n')
                _at++;
            else
                return;
        }
    }

    /// <summary>Whether a definition or a directive starts here, which ends the previous rule.</summary>
    private bool AtDefinitionStart()
    {
        if (Peek() == '%')
            return true;
        int saved = _at;
        try
        {
            if (Peek() is '?' or '!')
                _at++;
            if (ParseName() is null)
                return false;
            SkipPriority();
            SkipInlineSpace();
            return Peek() == ':';
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
            if (_at >= _text.Length || Peek() is '|' or ')' or ']' || AtDefinitionStart())
                return parts.Count == 1 ? parts[0] : new RegexSequence(parts);
            parts.Add(ParseQuantified(ParsePrimary()));
        }
    }

    private RegexNode ParsePrimary()
    {
        int c = Peek(), at = _at;
        switch (c)
        {
            case '"' or '\'':
                return ParseLiteral((char)c);
            case '/':
                return ParseRegex();
            case '(' or '[':
                _at++;
                var inner = ParseAlternation();
                SkipSpace();
                int close = c == '(' ? ')' : ']';
                if (Peek() != close)
                    throw Error($"this '{(char)c}' is never closed", at);
                _at++;
                return c == '(' ? inner : new RegexRepeat(inner, 0, 1);
        }

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
                continue;
            }

            int saved = _at;
            SkipInlineSpace();
            if (Peek() != '~')
            {
                _at = saved;
                return node;
            }

            int tilde = _at++;
            SkipInlineSpace();
            int min = ParseCount() ?? throw Error("expected a count after '~'", tilde);
            int max = min;
            if (Peek() == '.' && Peek(1) == '.')
            {
                _at += 2;
                max = ParseCount() ?? throw Error("expected a count after '..'", tilde);
            }

            if (max < min || max > RegexParser.MaxRepeat)
                throw Error($"the repetition ~ {min}..{max} must have min ≤ max ≤ {RegexParser.MaxRepeat}", tilde);
            node = new RegexRepeat(node, min, max);
        }
    }

    private int? ParseCount()
    {
        int start = _at;
        while (Peek() is >= '0' and <= '9' && _at - start < 9)
            _at++;
        return _at == start ? null : int.Parse(Slice(start, _at), System.Globalization.CultureInfo.InvariantCulture);
    }

    private RegexNode ParseLiteral(char quote)
    {
        int open = _at++;
        var chars = new List<int>();
        while (Peek() != quote)
        {
            if (Peek() < 0 || Peek() == '\n')
                throw Error("this string is never closed", open);
            chars.Add(ParseChar());
        }

        _at++;
        if (chars.Count == 1 && Peek() == '.' && Peek(1) == '.' && Peek(2) is '"' or '\'')
        {
            _at += 2;
            int rangeAt = _at;
            var end = ParseLiteral((char)Peek());
            if (end is not RegexChars { Set: var last } || last.Ranges is not [(int hi, _)] || hi < chars[0])
                throw Error("a range \"a\"..\"z\" needs one character on each side, in order", rangeAt);
            return new RegexChars(CodePointSet.Range(chars[0], hi));
        }

        bool anyCase = Peek() == 'i' && !(Peek(1) is int n && (n is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '_'));
        if (anyCase)
            _at++;
        var nodes = chars.Select(ch => (RegexNode)new RegexChars(anyCase && char.IsAsciiLetter((char)Math.Min(ch, 0xFFFF))
            ? CodePointSet.Of([(char.ToLowerInvariant((char)ch), char.ToLowerInvariant((char)ch)), (char.ToUpperInvariant((char)ch), char.ToUpperInvariant((char)ch))])
            : CodePointSet.Single(ch))).ToList();
        return nodes.Count == 1 ? nodes[0] : new RegexSequence(nodes);
    }

    private RegexNode ParseRegex()
    {
        int open = _at++;
        int start = _at;
        while (Peek() != '/')
        {
            if (Peek() < 0 || Peek() == '\n')
                throw Error("this /regular expression/ is never closed", open);
            _at += Peek() == '\\' && Peek(1) >= 0 ? 2 : 1;
        }

        string pattern = Slice(start, _at++);
        if (Peek() is >= 'a' and <= 'z')
            throw Error($"the regular expression flag '{Show(Peek())}' is not supported");
        return RegexParser.Parse(pattern.Replace("\\/", "/", StringComparison.Ordinal), $"{Where}[{start}]");
    }

    /// <summary>One character of a string literal, Python's escapes read.</summary>
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
            'f' => '\f',
            '\\' or '"' or '\'' => escaped,
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
