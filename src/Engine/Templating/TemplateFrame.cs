namespace Serving.Engine.Templating;

/// <summary>
/// One variable scope: the template's top level, a macro call, or one iteration of a <c>for</c> body (so a <c>set</c>
/// inside a loop does not leak out of it, as in Jinja2; <c>namespace</c> objects exist for that). Lookups walk outwards.
/// </summary>
internal sealed class TemplateFrame(TemplateFrame? parent)
{
    private readonly Dictionary<string, object?> _variables = new(StringComparer.Ordinal);

    public TemplateFrame? Parent => parent;

    public void Set(string name, object? value) => _variables[name] = value;

    public bool TryGet(string name, out object? value)
    {
        for (var frame = this; frame is not null; frame = frame.Parent)
            if (frame._variables.TryGetValue(name, out value))
                return true;
        value = null;
        return false;
    }
}
