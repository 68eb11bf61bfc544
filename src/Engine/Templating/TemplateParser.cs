namespace Serving.Engine.Templating;

/// <summary>
/// Parses the statement structure of a template: <c>if/elif/else</c>, <c>for … else</c> with <c>break</c>/<c>continue</c>,
/// <c>set</c> (names, tuples, namespace attributes, blocks), <c>macro</c>, <c>filter</c> blocks and transformers'
/// <c>generation</c> marker. Anything else (<c>include</c>, <c>extends</c>, <c>call</c> …) is an error naming it, so a
/// template this engine cannot render exactly is refused when it is loaded rather than rendered wrongly.
/// </summary>
internal sealed class TemplateParser
{
    private readonly List<TemplateSegment> _segments;
    private int _pos;

    private TemplateParser(List<TemplateSegment> segments) => _segments = segments;

    public static IReadOnlyList<TemplateNode> Parse(string source)
    {
        var parser = new TemplateParser(TemplateSplitter.Split(source));
        var (body, end) = parser.Body();
        if (end is not null)
            throw new TemplateException($"line {end.Value.Line}: '{end.Value.Keyword}' without a block to end");
        return body;
    }

    /// <summary>Nodes up to a statement that is not its own (an end or a branch keyword), which is returned unconsumed.</summary>
    private (List<TemplateNode> Body, (string Keyword, ExpressionParser Parser, int Line)? Stop) Body(params string[] stops)
    {
        var nodes = new List<TemplateNode>();
        while (_pos < _segments.Count)
        {
            var segment = _segments[_pos++];
            switch (segment.Kind)
            {
                case TemplateSegmentKind.Text:
                    nodes.Add(new TemplateNode.Text(segment.Source));
                    continue;
                case TemplateSegmentKind.Output:
                    var output = new ExpressionParser(ExpressionLexer.Tokenize(segment.Source, segment.Line), segment.Line);
                    var value = output.Parse();
                    output.ExpectEnd();
                    nodes.Add(new TemplateNode.Output(value, segment.Line));
                    continue;
            }

            var p = new ExpressionParser(ExpressionLexer.Tokenize(segment.Source, segment.Line), segment.Line);
            string keyword = p.ExpectName();
            if (stops.Contains(keyword) || keyword.StartsWith("end", StringComparison.Ordinal) || keyword is "elif" or "else")
                return (nodes, (keyword, p, segment.Line));
            nodes.Add(keyword switch
            {
                "if" => If(p),
                "for" => For(p, segment.Line),
                "set" => Set(p, segment.Line),
                "macro" => Macro(p),
                "filter" => FilterBlock(p),
                "break" => End(p, new TemplateNode.Break()),
                "continue" => End(p, new TemplateNode.Continue()),
                "generation" => Generation(p),
                _ => throw p.Error($"the statement '{keyword}' is not supported in chat templates"),
            });
        }

        return (nodes, null);
    }

    private static TemplateNode End(ExpressionParser p, TemplateNode node)
    {
        p.ExpectEnd();
        return node;
    }

    private List<TemplateNode> Until(string end, string opener, int line)
    {
        var (body, stop) = Body(end);
        if (stop is not { } s || s.Keyword != end)
            throw new TemplateException($"line {line}: '{opener}' is not closed by '{end}'" + (stop is { } other ? $" (found '{other.Keyword}' on line {other.Line})" : ""));
        return body;
    }

    private TemplateNode If(ExpressionParser p)
    {
        var branches = new List<(TemplateExpression, IReadOnlyList<TemplateNode>)>();
        var condition = p.Parse();
        p.ExpectEnd();
        int line = p.Line;
        while (true)
        {
            var (body, stop) = Body("elif", "else", "endif");
            branches.Add((condition, body));
            switch (stop)
            {
                case ("elif", var rest, _):
                    condition = rest.Parse();
                    rest.ExpectEnd();
                    continue;
                case ("else", var rest, _):
                    rest.ExpectEnd();
                    var otherwise = Until("endif", "if", line);
                    return new TemplateNode.If(branches, otherwise);
                case ("endif", _, _):
                    return new TemplateNode.If(branches, []);
                default:
                    throw new TemplateException($"line {line}: 'if' is not closed by 'endif'");
            }
        }
    }

    private TemplateNode For(ExpressionParser p, int line)
    {
        var targets = new List<string> { p.ExpectName() };
        while (p.Accept(","))
            targets.Add(p.ExpectName());
        if (!p.AcceptName("in"))
            throw p.Error("expected 'in' in the for statement");
        var items = p.ParseNoConditional();
        TemplateExpression? filter = p.AcceptName("if") ? p.ParseNoConditional() : null;
        if (p.AcceptName("recursive"))
            throw p.Error("recursive for loops are not supported in chat templates");
        p.ExpectEnd();
        var (body, stop) = Body("else", "endfor");
        List<TemplateNode> otherwise = [];
        if (stop is ("else", _, _))
            otherwise = Until("endfor", "for", line);
        else if (stop is not ("endfor", _, _))
            throw new TemplateException($"line {line}: 'for' is not closed by 'endfor'");
        return new TemplateNode.For(targets, items, filter, body, otherwise, line);
    }

    private TemplateNode Set(ExpressionParser p, int line)
    {
        var targets = new List<string> { p.ExpectName() };
        string? attribute = null;
        if (p.Accept("."))
            attribute = p.ExpectName();
        else
            while (p.Accept(","))
                targets.Add(p.ExpectName());
        if (p.Accept("="))
        {
            var value = p.Parse();
            p.ExpectEnd();
            return new TemplateNode.Set(targets, attribute, value, line);
        }

        if (attribute is not null || targets.Count != 1)
            throw p.Error("a block set assigns one plain name");
        var filters = new List<TemplateExpression.Filter>();
        while (p.Accept("|"))
            filters.Add(p.FilterCall(new TemplateExpression.Constant(null)));
        p.ExpectEnd();
        return new TemplateNode.SetBlock(targets[0], Until("endset", "set", line), filters);
    }

    private TemplateNode Macro(ExpressionParser p)
    {
        string name = p.ExpectName();
        var parameters = new List<(string, TemplateExpression?)>();
        p.Expect("(");
        while (!p.Accept(")"))
        {
            string parameter = p.ExpectName();
            parameters.Add((parameter, p.Accept("=") ? p.Parse() : null));
            if (!p.IsOperator(")"))
                p.Expect(",");
        }

        p.ExpectEnd();
        return new TemplateNode.Macro(name, parameters, Until("endmacro", "macro", p.Line));
    }

    private TemplateNode FilterBlock(ExpressionParser p)
    {
        var filters = new List<TemplateExpression.Filter> { p.FilterCall(new TemplateExpression.Constant(null)) };
        while (p.Accept("|"))
            filters.Add(p.FilterCall(new TemplateExpression.Constant(null)));
        p.ExpectEnd();
        return new TemplateNode.FilterBlock(filters, Until("endfilter", "filter", p.Line));
    }

    /// <summary>transformers' <c>{% generation %}</c> marks assistant text for masks; rendering is unchanged by it.</summary>
    private TemplateNode Generation(ExpressionParser p)
    {
        p.ExpectEnd();
        return new TemplateNode.If([(new TemplateExpression.Constant(true), Until("endgeneration", "generation", p.Line))], []);
    }
}
