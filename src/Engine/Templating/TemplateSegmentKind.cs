namespace Serving.Engine.Templating;

internal enum TemplateSegmentKind
{
    Text,
    Output,
    Statement,
}
