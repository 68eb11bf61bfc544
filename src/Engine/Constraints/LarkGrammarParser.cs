namespace Serving.Engine.Constraints;

/// <summary>
/// Parses the Lark grammar subset vLLM converts for its grammar backends: rules and terminals <c>name: alternatives</c>
/// (<c>?name</c>, <c>!name</c> and <c>NAME.2</c> read as plain names), continuation lines starting with <c>|</c>, the start
/// rule <c>start</c>; string literals in double or single quotes (with the <c>i</c> flag: any letter case), character
/// ranges <c>"a".."z"</c>, <c>/regular expressions/</c> (the <c>regex</c> subset), groups, <c>[optional]</c>,
/// <c>* + ?</c>, <c>~ n</c> and <c>~ n..m</c>, <c>-> alias</c> (read past: it names a tree node), <c>//</c> comments, and <c>%import common.NAME</c> (or
/// <c>common (A, B)</c>) for the common terminals, and <c>%ignore</c> (a terminal name, literal or regular expression:
/// text Lark's lexer skips between tokens, allowed before every terminal of a rule and after the start rule,
/// <see cref="LarkIgnorable"/>). <c>%declare</c> / <c>%override</c> are refused naming them. Terminals are the names
/// without a lower-case letter, and literals and regular expressions written in rules. The result expands like a GBNF
/// grammar (<see cref="GrammarParser"/>): recursion through machine calls, without a depth bound.
/// </summary>
internal sealed class LarkGrammarParser : GrammarReader
{
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

    /// <summary>Characters a backslash stands before for themselves in a string literal (Python's).</summary>
    private const string Escapable = "\\\"'";

    private readonly List<RegexNode> _ignored = [];

    /// <summary>Whether a rule's body (not a terminal's, not a directive) is being read: its terminals may follow ignored text.</summary>
    private bool _inRule;

    private LarkGrammarParser(string grammar)
        : base(grammar)
    {
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
        var start = parser.Finish("start", "a Lark grammar's start");
        return parser._ignored.Count == 0 ? start : new RegexSequence([start, LarkIgnorable.Skipped(parser._ignored)]);
    }

    private void ParseDefinitions()
    {
        SkipSpace();
        if (At >= Text.Length)
            throw Error("the grammar is empty");
        while (At < Text.Length)
        {
            if (Peek() == '%')
                ParseDirective();
            else
            {
                int start = At;
                if (Peek() is '?' or '!')
                    At++;
                string name = ParseName() ?? throw Error($"expected a rule name, found '{Show(Peek())}'");
                SkipPriority();
                SkipSpace();
                if (Peek() != ':')
                    throw Error($"expected ':' after the rule name '{name}'");
                At++;
                if (Rules.ContainsKey(name))
                    throw Error($"the rule '{name}' is defined twice", start);
                _inRule = !IsTerminal(name);
                Rules[name] = ParseAlternation();
                _inRule = false;
            }

            SkipSpace();
        }
    }

    private void ParseDirective()
    {
        int start = At++;
        string directive = ParseName() ?? "";
        if (directive == "ignore")
        {
            SkipInlineSpace();
            _ignored.Add(ParseQuantified(ParsePrimary()));
            return;
        }

        if (directive != "import")
            throw Error($"the directive %{directive} is not supported", start);
        SkipInlineSpace();
        string module = ParseName() ?? "";
        if (module != "common")
            throw Error($"only %import common is supported, not '{module}'", start);
        var names = new List<string>();
        if (Peek() == '.')
        {
            At++;
            names.Add(ParseName() ?? throw Error("expected a terminal name after 'common.'"));
        }
        else
        {
            SkipInlineSpace();
            if (Peek() != '(')
                throw Error("expected '.NAME' or '(NAME, …)' after %import common");
            do
            {
                At++;
                SkipInlineSpace();
                names.Add(ParseName() ?? throw Error("expected a terminal name"));
                SkipInlineSpace();
            }
            while (Peek() == ',');
            if (Peek() != ')')
                throw Error("expected ')' to close the import list");
            At++;
        }

        foreach (string name in names)
            Rules[name] = Common.TryGetValue(name, out var pattern) ? RegexParser.Parse(pattern, $"common.{name}")
                : throw Error($"common.{name} is not one of the common terminals ({string.Join(", ", Common.Keys)})", start);
    }

    /// <summary>Lark's convention: terminals are named in upper case, rules in lower case.</summary>
    private static bool IsTerminal(string name) => !name.Any(char.IsAsciiLetterLower);

    /// <summary><paramref name="terminal"/>, after which ignored text may come when it sits in a rule.</summary>
    private RegexNode Terminal(RegexNode terminal) => _inRule ? new LarkIgnorable(terminal, _ignored) : terminal;

    private string? ParseName()
    {
        int start = At;
        while (Peek() is int c && (c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '_') && !(At == start && c is >= '0' and <= '9'))
            At++;
        return At > start ? Slice(start, At) : null;
    }

    private void SkipPriority()
    {
        if (Peek() == '.' && Peek(1) is >= '0' and <= '9')
            for (At++; Peek() is >= '0' and <= '9'; At++)
            {
            }
    }

    private void SkipInlineSpace()
    {
        while (Peek() is ' ' or '\t')
            At++;
    }

    /// <summary>Whitespace (line breaks included) and <c>//</c> comments.</summary>
    private void SkipSpace()
    {
        while (At < Text.Length)
        {
            if (Peek() == '/' && Peek(1) == '/')
                while (At < Text.Length && Peek() != '\n')
                    At++;
            else if (Peek() is ' ' or '\t' or '\r' or '\n')
                At++;
            else
                return;
        }
    }

    /// <summary>Whether a definition or a directive starts here, which ends the previous rule.</summary>
    private bool AtDefinitionStart()
    {
        if (Peek() == '%')
            return true;
        int saved = At;
        try
        {
            if (Peek() is '?' or '!')
                At++;
            if (ParseName() is null)
                return false;
            SkipPriority();
            SkipInlineSpace();
            return Peek() == ':';
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
            if (Peek() == '-' && Peek(1) == '>')
            {
                // An alias names the tree node the alternative makes (value: SIGNED_NUMBER -> number): no text of its own.
                At += 2;
                SkipInlineSpace();
                if (ParseName() is null)
                    throw Error("expected a name after '->'");
                SkipSpace();
                if (!(At >= Text.Length || Peek() is '|' or ')' or ']' || AtDefinitionStart()))
                    throw Error($"an alias ends its alternative; found '{Show(Peek())}' after it");
            }

            if (At >= Text.Length || Peek() is '|' or ')' or ']' || AtDefinitionStart())
                return parts.Count == 1 ? parts[0] : new RegexSequence(parts);
            parts.Add(ParseQuantified(ParsePrimary()));
        }
    }

    private RegexNode ParsePrimary()
    {
        int c = Peek(), at = At;
        switch (c)
        {
            case '"' or '\'':
                return Terminal(ParseLiteral((char)c));
            case '/':
                return Terminal(ParseRegex());
            case '(' or '[':
                At++;
                var inner = ParseAlternation();
                SkipSpace();
                int close = c == '(' ? ')' : ']';
                if (Peek() != close)
                    throw Error($"this '{(char)c}' is never closed", at);
                At++;
                return c == '(' ? inner : new RegexRepeat(inner, 0, 1);
        }

        var reference = ReferenceHere(ParseName);
        return reference is GrammarRuleRef { Name: var name } && IsTerminal(name) ? Terminal(reference) : reference;
    }

    private RegexNode ParseQuantified(RegexNode node)
    {
        while (true)
        {
            if (Postfix(node) is { } repeated)
            {
                node = repeated;
                continue;
            }

            int saved = At;
            SkipInlineSpace();
            if (Peek() != '~')
            {
                At = saved;
                return node;
            }

            int tilde = At++;
            SkipInlineSpace();
            int min = ParseCount() ?? throw Error("expected a count after '~'", tilde);
            int max = min;
            if (Peek() == '.' && Peek(1) == '.')
            {
                At += 2;
                max = ParseCount() ?? throw Error("expected a count after '..'", tilde);
            }

            if (max < min || max > RegexParser.MaxRepeat)
                throw Error($"the repetition ~ {min}..{max} must have min ≤ max ≤ {RegexParser.MaxRepeat}", tilde);
            node = new RegexRepeat(node, min, max);
        }
    }

    private RegexNode ParseLiteral(char quote)
    {
        int open = At++;
        var chars = new List<int>();
        while (Peek() != quote)
        {
            if (Peek() < 0 || Peek() == '\n')
                throw Error("this string is never closed", open);
            chars.Add(ParseChar(Escapable));
        }

        At++;
        if (chars.Count == 1 && Peek() == '.' && Peek(1) == '.' && Peek(2) is '"' or '\'')
        {
            At += 2;
            int rangeAt = At;
            var end = ParseLiteral((char)Peek());
            if (end is not RegexChars { Set: var last } || last.Ranges is not [(int hi, _)] || hi < chars[0])
                throw Error("a range \"a\"..\"z\" needs one character on each side, in order", rangeAt);
            return new RegexChars(CodePointSet.Range(chars[0], hi));
        }

        bool anyCase = Peek() == 'i' && !(Peek(1) is int n && (n is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '_'));
        if (anyCase)
            At++;
        var nodes = chars.Select(ch => (RegexNode)new RegexChars(anyCase && char.IsAsciiLetter((char)Math.Min(ch, 0xFFFF))
            ? CodePointSet.Of([(char.ToLowerInvariant((char)ch), char.ToLowerInvariant((char)ch)), (char.ToUpperInvariant((char)ch), char.ToUpperInvariant((char)ch))])
            : CodePointSet.Single(ch))).ToList();
        return nodes.Count == 1 ? nodes[0] : new RegexSequence(nodes);
    }

    private RegexNode ParseRegex()
    {
        int open = At++;
        int start = At;
        while (Peek() != '/')
        {
            if (Peek() < 0 || Peek() == '\n')
                throw Error("this /regular expression/ is never closed", open);
            At += Peek() == '\\' && Peek(1) >= 0 ? 2 : 1;
        }

        string pattern = Slice(start, At++);
        if (Peek() is >= 'a' and <= 'z')
            throw Error($"the regular expression flag '{Show(Peek())}' is not supported");
        return RegexParser.Parse(pattern.Replace("\\/", "/", StringComparison.Ordinal), $"{Where}[{start}]");
    }
}
