namespace Serving.Engine.Templating;

/// <summary>Jinja2's tests (<c>x is defined</c>, <c>x is string</c>, <c>x is divisibleby 3</c> …).</summary>
internal static class TemplateTests
{
    /// <summary>Every test <see cref="Apply"/> knows: the parser refuses others when the template is loaded, as Jinja2 does.</summary>
    public static readonly IReadOnlySet<string> Names = new HashSet<string>(StringComparer.Ordinal) { "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string", "mapping", "iterable", "sequence", "callable", "sameas", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in", "divisibleby", "even", "odd", "lower", "upper" };

    public static bool Apply(string name, object? value, IReadOnlyList<object?> args)
    {
        object? Arg() => args.Count > 0 ? args[0] : throw new TemplateException($"the test '{name}' needs an argument");
        return name switch
        {
            "defined" => value is not Undefined,
            "undefined" => value is Undefined,
            "none" => value is null,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "integer" => value is long,
            "float" => value is double,
            "number" => value is long or double,
            "string" => value is string,
            "mapping" => value is Dictionary<string, object?>,
            "iterable" => value is string or List<object?> or Dictionary<string, object?>,
            "sequence" => value is string or List<object?> or Dictionary<string, object?>,
            "callable" => value is TemplateCallable,
            "sameas" => ReferenceEquals(value, Arg()) || (value is null && Arg() is null) || (value is bool b && Arg() is bool c && b == c),
            "eq" or "equalto" or "==" => PythonValues.AreEqual(value, Arg()),
            "ne" or "!=" => !PythonValues.AreEqual(value, Arg()),
            "lt" or "lessthan" or "<" => PythonValues.Compare(value, Arg()) < 0,
            "le" or "<=" => PythonValues.Compare(value, Arg()) <= 0,
            "gt" or "greaterthan" or ">" => PythonValues.Compare(value, Arg()) > 0,
            "ge" or ">=" => PythonValues.Compare(value, Arg()) >= 0,
            "in" => (bool)ExpressionEvaluator.Binary("in", value, Arg())!,
            "divisibleby" => PythonValues.ToLong(value) % PythonValues.ToLong(Arg()) == 0,
            "even" => PythonValues.ToLong(value) % 2 == 0,
            "odd" => PythonValues.ToLong(value) % 2 != 0,
            "lower" => value is string s && s == s.ToLowerInvariant(),
            "upper" => value is string u && u == u.ToUpperInvariant(),
            _ => throw new TemplateException($"the test '{name}' is not supported in chat templates"),
        };
    }
}
