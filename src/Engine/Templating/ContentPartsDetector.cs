namespace Serving.Engine.Templating;

/// <summary>
/// Whether a chat template loops over a message's content (<c>{% for part in message['content'] %}</c>, where
/// <c>message</c> is a loop variable over <c>messages</c> or a slice or item of it): such a template takes OpenAI's
/// list of content parts rather than a string — vLLM's "openai" content format, found the way vLLM finds it.
/// </summary>
internal static class ContentPartsDetector
{
    public static bool IteratesMessageContent(IReadOnlyList<TemplateNode> nodes)
    {
        var messageNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var loop in Loops(nodes))
            if (loop.Targets.Count == 1 && Accesses(loop.Items, "messages", null))
                messageNames.Add(loop.Targets[0]);
        return Loops(nodes).Any(loop => messageNames.Any(name => Accesses(loop.Items, name, "content")));
    }

    /// <summary>
    /// Whether <paramref name="e"/> is variable <paramref name="name"/> (with <paramref name="key"/>: its item or
    /// attribute of that name), possibly sliced, indexed or through filters.
    /// </summary>
    private static bool Accesses(TemplateExpression e, string name, string? key) => e switch
    {
        TemplateExpression.Variable v => key is null && v.Name == name,
        TemplateExpression.Attribute a => key is not null && a.Name == key && a.Target is TemplateExpression.Variable { Name: var n } && n == name,
        TemplateExpression.Item i => key is not null && i.Key is TemplateExpression.Constant { Value: string k } && k == key
                && i.Target is TemplateExpression.Variable { Name: var n2 } && n2 == name
            || key is null && Accesses(i.Target, name, null),
        TemplateExpression.Slice s => Accesses(s.Target, name, key),
        TemplateExpression.Filter f => Accesses(f.Target, name, key),
        _ => false,
    };

    /// <summary>Every <c>for</c> loop, nested ones included (in blocks, branches and macros).</summary>
    private static IEnumerable<TemplateNode.For> Loops(IEnumerable<TemplateNode> nodes)
    {
        foreach (var node in nodes)
        {
            var children = node switch
            {
                TemplateNode.For f => [.. f.Body, .. f.Else],
                TemplateNode.If i => [.. i.Branches.SelectMany(b => b.Body), .. i.Else],
                TemplateNode.SetBlock s => s.Body,
                TemplateNode.Macro m => m.Body,
                TemplateNode.FilterBlock b => b.Body,
                _ => (IReadOnlyList<TemplateNode>)[],
            };
            if (node is TemplateNode.For loop)
                yield return loop;
            foreach (var inner in Loops(children))
                yield return inner;
        }
    }
}
