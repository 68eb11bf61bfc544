namespace Serving.Engine.Templating;

/// <summary>A Python tuple (<c>dict.items()</c> pairs, <c>dictsort</c>): a list that prints in parentheses.</summary>
internal sealed class PythonTuple(IEnumerable<object?> items) : List<object?>(items);
