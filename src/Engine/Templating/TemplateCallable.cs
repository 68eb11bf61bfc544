namespace Serving.Engine.Templating;

/// <summary>A function a template can call: a global (<c>range</c>, <c>raise_exception</c>), a bound method, or a macro.</summary>
/// <param name="Name">For messages.</param>
/// <param name="Invoke">Positional arguments, then keyword arguments.</param>
internal sealed record TemplateCallable(string Name, Func<IReadOnlyList<object?>, IReadOnlyDictionary<string, object?>, object?> Invoke);
