namespace Serving.Engine.Templating;

/// <summary>One piece of template source after whitespace control: literal text, an <c>{{ output }}</c> or a <c>{% statement %}</c>.</summary>
/// <param name="Kind">What the piece is.</param>
/// <param name="Source">The text, or the tag's inside without its delimiters and whitespace-control marks.</param>
/// <param name="Line">1-based line of the piece's start, for messages.</param>
internal sealed record TemplateSegment(TemplateSegmentKind Kind, string Source, int Line);
