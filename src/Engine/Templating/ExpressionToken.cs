namespace Serving.Engine.Templating;

/// <summary>A token inside a tag: a name, a literal (<see cref="Value"/>), an operator or punctuation, or the end.</summary>
internal sealed record ExpressionToken(ExpressionTokenKind Kind, string Text, object? Value = null);
