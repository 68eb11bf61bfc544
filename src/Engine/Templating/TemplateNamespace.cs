namespace Serving.Engine.Templating;

/// <summary>The object <c>namespace(...)</c> makes: the one value a template may assign attributes of (<c>set ns.x = ...</c>) across loop scopes.</summary>
internal sealed class TemplateNamespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}
