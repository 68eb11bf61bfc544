namespace Serving.Engine.Templating;

/// <summary>A statement of a template, as parsed. The nested records are its kinds.</summary>
internal abstract record TemplateNode
{
    public sealed record Text(string Value) : TemplateNode;

    public sealed record Output(TemplateExpression Value, int Line) : TemplateNode;

    public sealed record If(IReadOnlyList<(TemplateExpression Condition, IReadOnlyList<TemplateNode> Body)> Branches, IReadOnlyList<TemplateNode> Else)
        : TemplateNode;

    /// <summary><c>for a, b in items if filter</c> … <c>else</c> (when nothing was iterated) … <c>endfor</c>.</summary>
    public sealed record For(IReadOnlyList<string> Targets, TemplateExpression Items, TemplateExpression? Filter, IReadOnlyList<TemplateNode> Body,
        IReadOnlyList<TemplateNode> Else, int Line) : TemplateNode;

    /// <summary><c>set a = v</c>, <c>set a, b = v</c>, or <c>set ns.attr = v</c> (<see cref="Attribute"/> set).</summary>
    public sealed record Set(IReadOnlyList<string> Targets, string? Attribute, TemplateExpression Value, int Line) : TemplateNode;

    /// <summary><c>set name</c> … <c>endset</c>: the rendered body, optionally through filters.</summary>
    public sealed record SetBlock(string Target, IReadOnlyList<TemplateNode> Body, IReadOnlyList<TemplateExpression.Filter> Filters) : TemplateNode;

    public sealed record Macro(string Name, IReadOnlyList<(string Name, TemplateExpression? Default)> Parameters, IReadOnlyList<TemplateNode> Body)
        : TemplateNode;

    /// <summary><c>filter name</c> … <c>endfilter</c>: the rendered body through the filters.</summary>
    public sealed record FilterBlock(IReadOnlyList<TemplateExpression.Filter> Filters, IReadOnlyList<TemplateNode> Body) : TemplateNode;

    public sealed record Break : TemplateNode;

    public sealed record Continue : TemplateNode;
}
