namespace Serving.Engine.Templating;

/// <summary>
/// Jinja2's default <c>Undefined</c>: a missing variable, key or attribute. It prints as nothing, is false, iterates as
/// empty and equals only another undefined; anything else done with it (arithmetic, its attributes) is an error.
/// </summary>
internal sealed class Undefined
{
    private Undefined(string name) => Name = name;

    public static readonly Undefined Value = new("value");

    public string Name { get; }

    public static Undefined Named(string name) => new(name);

    public override string ToString() => "";

    public override bool Equals(object? obj) => obj is Undefined;

    public override int GetHashCode() => 0;
}
