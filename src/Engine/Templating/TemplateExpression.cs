namespace Serving.Engine.Templating;

/// <summary>An expression of a template, as parsed. The nested records are its kinds.</summary>
internal abstract record TemplateExpression
{
    public sealed record Constant(object? Value) : TemplateExpression;

    public sealed record Variable(string Name) : TemplateExpression;

    public sealed record ListLiteral(IReadOnlyList<TemplateExpression> Items) : TemplateExpression;

    public sealed record DictLiteral(IReadOnlyList<(TemplateExpression Key, TemplateExpression Value)> Entries) : TemplateExpression;

    /// <summary><c>obj.name</c>: a key of a mapping, else an attribute or method.</summary>
    public sealed record Attribute(TemplateExpression Target, string Name) : TemplateExpression;

    /// <summary><c>obj[key]</c>: an item, else an attribute of that name.</summary>
    public sealed record Item(TemplateExpression Target, TemplateExpression Key) : TemplateExpression;

    public sealed record Slice(TemplateExpression Target, TemplateExpression? Start, TemplateExpression? Stop, TemplateExpression? Step) : TemplateExpression;

    public sealed record Call(TemplateExpression Target, IReadOnlyList<TemplateExpression> Arguments, IReadOnlyList<(string Name, TemplateExpression Value)> Keywords)
        : TemplateExpression;

    public sealed record Filter(TemplateExpression Target, string Name, IReadOnlyList<TemplateExpression> Arguments,
        IReadOnlyList<(string Name, TemplateExpression Value)> Keywords) : TemplateExpression;

    public sealed record Test(TemplateExpression Target, string Name, IReadOnlyList<TemplateExpression> Arguments, bool Negated) : TemplateExpression;

    public sealed record Unary(string Operator, TemplateExpression Operand) : TemplateExpression;

    public sealed record Binary(string Operator, TemplateExpression Left, TemplateExpression Right) : TemplateExpression;

    /// <summary><c>a if condition else b</c>; without <c>else</c> the result is undefined when the condition is false.</summary>
    public sealed record Conditional(TemplateExpression Condition, TemplateExpression Then, TemplateExpression? Else) : TemplateExpression;
}
