namespace Serving.Engine.Templating;

internal enum ExpressionTokenKind
{
    Name,
    Literal,
    Operator,
    End,
}
