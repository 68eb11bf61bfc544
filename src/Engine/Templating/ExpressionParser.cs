namespace Serving.Engine.Templating;

/// <summary>
/// Jinja2's expression grammar over one tag's tokens, with its precedence: conditional, <c>or</c>, <c>and</c>, <c>not</c>,
/// comparisons and <c>in</c>, <c>+ -</c>, <c>~</c>, <c>* / // %</c>, <c>**</c>, unary minus, then primaries with their
/// attribute, item, slice and call suffixes, then filters (<c>|f</c>) and tests (<c>is t</c>).
/// </summary>
internal sealed class ExpressionParser(List<ExpressionToken> tokens, int line)
{
    private int _pos;

    public int Line => line;

    public ExpressionToken Peek(int ahead = 0) => tokens[Math.Min(_pos + ahead, tokens.Count - 1)];

    public bool AtEnd => Peek().Kind == ExpressionTokenKind.End;

    public ExpressionToken Next() => tokens[Math.Min(_pos++, tokens.Count - 1)];

    public bool IsOperator(string op, int ahead = 0) => Peek(ahead) is { Kind: ExpressionTokenKind.Operator } t && t.Text == op;

    public bool IsName(string name, int ahead = 0) => Peek(ahead) is { Kind: ExpressionTokenKind.Name } t && t.Text == name;

    public bool Accept(string op)
    {
        if (!IsOperator(op))
            return false;
        _pos++;
        return true;
    }

    public bool AcceptName(string name)
    {
        if (!IsName(name))
            return false;
        _pos++;
        return true;
    }

    public void Expect(string op)
    {
        if (!Accept(op))
            throw Error($"expected '{op}'");
    }

    public string ExpectName()
    {
        var t = Next();
        return t.Kind == ExpressionTokenKind.Name ? t.Text : throw Error($"expected a name, found '{t.Text}'");
    }

    public void ExpectEnd()
    {
        if (!AtEnd)
            throw Error($"unexpected '{Peek().Text}'");
    }

    public TemplateException Error(string message) => new($"line {line}: {message}");

    public TemplateExpression Parse()
    {
        var value = Or();
        if (!AcceptName("if"))
            return value;
        var condition = Or();
        var otherwise = AcceptName("else") ? Parse() : null;
        return new TemplateExpression.Conditional(condition, value, otherwise);
    }

    /// <summary>An expression without a trailing <c>if … else</c> (for loop iterables, where <c>if</c> filters).</summary>
    public TemplateExpression ParseNoConditional() => Or();

    private TemplateExpression Or()
    {
        var left = And();
        while (AcceptName("or"))
            left = new TemplateExpression.Binary("or", left, And());
        return left;
    }

    private TemplateExpression And()
    {
        var left = Not();
        while (AcceptName("and"))
            left = new TemplateExpression.Binary("and", left, Not());
        return left;
    }

    private TemplateExpression Not() => AcceptName("not") ? new TemplateExpression.Unary("not", Not()) : Compare();

    private TemplateExpression Compare()
    {
        var left = Add();
        while (true)
        {
            string? op = Peek() switch
            {
                { Kind: ExpressionTokenKind.Operator, Text: "==" or "!=" or "<" or ">" or "<=" or ">=" } t => t.Text,
                { Kind: ExpressionTokenKind.Name, Text: "in" } => "in",
                { Kind: ExpressionTokenKind.Name, Text: "not" } when IsName("in", 1) => "not in",
                _ => null,
            };
            if (op is null)
                return left;
            _pos += op == "not in" ? 2 : 1;
            left = new TemplateExpression.Binary(op, left, Add());
        }
    }

    private TemplateExpression Add()
    {
        var left = Concat();
        while (IsOperator("+") || IsOperator("-"))
            left = new TemplateExpression.Binary(Next().Text, left, Concat());
        return left;
    }

    private TemplateExpression Concat()
    {
        var left = Multiply();
        while (Accept("~"))
            left = new TemplateExpression.Binary("~", left, Multiply());
        return left;
    }

    private TemplateExpression Multiply()
    {
        var left = Power();
        while (IsOperator("*") || IsOperator("/") || IsOperator("//") || IsOperator("%"))
            left = new TemplateExpression.Binary(Next().Text, left, Power());
        return left;
    }

    private TemplateExpression Power()
    {
        var left = Unary(withFilters: true);
        while (Accept("**"))
            left = new TemplateExpression.Binary("**", left, Unary(withFilters: true));
        return left;
    }

    private TemplateExpression Unary(bool withFilters)
    {
        TemplateExpression value;
        if (IsOperator("-") || IsOperator("+"))
        {
            string op = Next().Text;
            value = new TemplateExpression.Unary(op, Unary(withFilters: false));
        }
        else
        {
            value = Postfix(Primary());
        }

        return withFilters ? FiltersAndTests(value) : value;
    }

    private TemplateExpression Primary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case ExpressionTokenKind.Literal:
                if (t.Value is not string text)
                    return new TemplateExpression.Constant(t.Value);
                // Adjacent string literals concatenate, as in Python.
                while (Peek() is { Kind: ExpressionTokenKind.Literal, Value: string more })
                {
                    text += more;
                    _pos++;
                }

                return new TemplateExpression.Constant(text);
            case ExpressionTokenKind.Name:
                return t.Text switch
                {
                    "true" or "True" => new TemplateExpression.Constant(true),
                    "false" or "False" => new TemplateExpression.Constant(false),
                    "none" or "None" => new TemplateExpression.Constant(null),
                    _ => new TemplateExpression.Variable(t.Text),
                };
            case ExpressionTokenKind.Operator when t.Text == "(":
                if (Accept(")"))
                    return new TemplateExpression.ListLiteral([]);
                var first = Parse();
                if (Accept(")"))
                    return first;
                var tuple = new List<TemplateExpression> { first };
                while (Accept(",") && !IsOperator(")"))
                    tuple.Add(Parse());
                Expect(")");
                return new TemplateExpression.ListLiteral(tuple);
            case ExpressionTokenKind.Operator when t.Text == "[":
                var items = new List<TemplateExpression>();
                while (!Accept("]"))
                {
                    items.Add(Parse());
                    if (!IsOperator("]"))
                        Expect(",");
                }

                return new TemplateExpression.ListLiteral(items);
            case ExpressionTokenKind.Operator when t.Text == "{":
                var entries = new List<(TemplateExpression, TemplateExpression)>();
                while (!Accept("}"))
                {
                    var key = Parse();
                    Expect(":");
                    entries.Add((key, Parse()));
                    if (!IsOperator("}"))
                        Expect(",");
                }

                return new TemplateExpression.DictLiteral(entries);
            default:
                throw Error($"unexpected '{t.Text}'" + (t.Kind == ExpressionTokenKind.End ? " (the expression ends too early)" : ""));
        }
    }

    private TemplateExpression Postfix(TemplateExpression value)
    {
        while (true)
        {
            if (Accept("."))
            {
                var t = Next();
                value = t.Kind == ExpressionTokenKind.Name ? new TemplateExpression.Attribute(value, t.Text)
                    : t is { Kind: ExpressionTokenKind.Literal, Value: long index } ? new TemplateExpression.Item(value, new TemplateExpression.Constant(index))
                    : throw Error($"expected an attribute name after '.', found '{t.Text}'");
            }
            else if (Accept("["))
            {
                value = Subscript(value);
            }
            else if (IsOperator("("))
            {
                var (args, keywords) = Arguments();
                value = new TemplateExpression.Call(value, args, keywords);
            }
            else
            {
                return value;
            }
        }
    }

    private TemplateExpression Subscript(TemplateExpression target)
    {
        TemplateExpression? start = IsOperator(":") ? null : Parse();
        if (Accept("]"))
            return new TemplateExpression.Item(target, start!);
        Expect(":");
        TemplateExpression? stop = IsOperator(":") || IsOperator("]") ? null : Parse();
        TemplateExpression? step = null;
        if (Accept(":") && !IsOperator("]"))
            step = Parse();
        Expect("]");
        return new TemplateExpression.Slice(target, start, stop, step);
    }

    public (List<TemplateExpression> Args, List<(string, TemplateExpression)> Keywords) Arguments()
    {
        Expect("(");
        var args = new List<TemplateExpression>();
        var keywords = new List<(string, TemplateExpression)>();
        while (!Accept(")"))
        {
            if (Peek().Kind == ExpressionTokenKind.Name && IsOperator("=", 1))
            {
                string name = Next().Text;
                _pos++;
                keywords.Add((name, Parse()));
            }
            else
            {
                args.Add(Parse());
            }

            if (!IsOperator(")"))
                Expect(",");
        }

        return (args, keywords);
    }

    private TemplateExpression FiltersAndTests(TemplateExpression value)
    {
        while (true)
        {
            if (Accept("|"))
            {
                value = FilterCall(value);
            }
            else if (AcceptName("is"))
            {
                bool negated = AcceptName("not");
                string name = ExpectName();
                if (!TemplateTests.Names.Contains(name))
                    throw Error($"the test '{name}' is not supported in chat templates");
                var args = new List<TemplateExpression>();
                if (IsOperator("("))
                    args = Arguments().Args;
                else if (Peek().Kind == ExpressionTokenKind.Literal || IsOperator("[") || IsOperator("{")
                    || Peek() is { Kind: ExpressionTokenKind.Name, Text: not ("and" or "or" or "else" or "if" or "is" or "in" or "not") })
                    args.Add(Unary(withFilters: false));
                value = new TemplateExpression.Test(value, name, args, negated);
            }
            else
            {
                return value;
            }
        }
    }

    /// <summary>One filter after its <c>|</c>: a name, dotted names joined, and optional arguments.</summary>
    public TemplateExpression.Filter FilterCall(TemplateExpression value)
    {
        string name = ExpectName();
        while (Accept("."))
            name += "." + ExpectName();
        if (!TemplateFilters.Names.Contains(name))
            throw Error($"the filter '{name}' is not supported in chat templates");
        if (!IsOperator("("))
            return new TemplateExpression.Filter(value, name, [], []);
        var (args, keywords) = Arguments();
        return new TemplateExpression.Filter(value, name, args, keywords);
    }
}
