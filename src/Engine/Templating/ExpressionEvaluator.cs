namespace Serving.Engine.Templating;

/// <summary>Evaluates expressions in a frame with Python's operator semantics (<see cref="PythonValues"/>).</summary>
internal sealed class ExpressionEvaluator(TemplateRenderer renderer)
{
    public object? Evaluate(TemplateExpression expression, TemplateFrame frame) => expression switch
    {
        TemplateExpression.Constant c => c.Value,
        TemplateExpression.Variable v => frame.TryGet(v.Name, out var value) ? value : Undefined.Named(v.Name),
        TemplateExpression.ListLiteral l => l.Items.Select(i => Evaluate(i, frame)).ToList(),
        TemplateExpression.DictLiteral d => DictOf(d, frame),
        TemplateExpression.Attribute a => TemplateMembers.Attribute(Evaluate(a.Target, frame), a.Name, Describe(a.Target)),
        TemplateExpression.Item i => TemplateMembers.Item(Evaluate(i.Target, frame), Evaluate(i.Key, frame), Describe(i.Target)),
        TemplateExpression.Slice s => TemplateMembers.Slice(Evaluate(s.Target, frame), Optional(s.Start, frame), Optional(s.Stop, frame), Optional(s.Step, frame)),
        TemplateExpression.Call c => Call(c, frame),
        TemplateExpression.Filter f => renderer.Filters.Apply(f.Name, Evaluate(f.Target, frame), f.Arguments.Select(a => Evaluate(a, frame)).ToList(),
            Keywords(f.Keywords, frame)),
        TemplateExpression.Test t => TemplateTests.Apply(t.Name, Evaluate(t.Target, frame), t.Arguments.Select(a => Evaluate(a, frame)).ToList()) != t.Negated,
        TemplateExpression.Unary u => Unary(u.Operator, Evaluate(u.Operand, frame)),
        TemplateExpression.Binary { Operator: "and" } b => And(b, frame),
        TemplateExpression.Binary { Operator: "or" } b => Or(b, frame),
        TemplateExpression.Binary b => Binary(b.Operator, Evaluate(b.Left, frame), Evaluate(b.Right, frame)),
        TemplateExpression.Conditional c => PythonValues.Truthy(Evaluate(c.Condition, frame))
            ? Evaluate(c.Then, frame) : c.Else is null ? Undefined.Value : Evaluate(c.Else, frame),
        _ => throw new TemplateException($"cannot evaluate {expression.GetType().Name}"),
    };

    private object? And(TemplateExpression.Binary b, TemplateFrame frame)
    {
        var left = Evaluate(b.Left, frame);
        return PythonValues.Truthy(left) ? Evaluate(b.Right, frame) : left;
    }

    private object? Or(TemplateExpression.Binary b, TemplateFrame frame)
    {
        var left = Evaluate(b.Left, frame);
        return PythonValues.Truthy(left) ? left : Evaluate(b.Right, frame);
    }

    private object? Optional(TemplateExpression? e, TemplateFrame frame) => e is null ? null : Evaluate(e, frame);

    private Dictionary<string, object?> DictOf(TemplateExpression.DictLiteral d, TemplateFrame frame)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in d.Entries)
            result[PythonValues.Str(Evaluate(key, frame))] = Evaluate(value, frame);
        return result;
    }

    private Dictionary<string, object?> Keywords(IReadOnlyList<(string Name, TemplateExpression Value)> keywords, TemplateFrame frame) =>
        keywords.ToDictionary(k => k.Name, k => Evaluate(k.Value, frame), StringComparer.Ordinal);

    private object? Call(TemplateExpression.Call c, TemplateFrame frame)
    {
        var target = Evaluate(c.Target, frame);
        if (target is not TemplateCallable callable)
            throw new TemplateException(target is Undefined u ? $"'{u.Name}' is undefined and cannot be called" : $"{PythonValues.TypeName(target)} is not callable");
        return callable.Invoke(c.Arguments.Select(a => Evaluate(a, frame)).ToList(), Keywords(c.Keywords, frame));
    }

    private static string Describe(TemplateExpression e) => e switch
    {
        TemplateExpression.Variable v => v.Name,
        TemplateExpression.Attribute a => Describe(a.Target) + "." + a.Name,
        TemplateExpression.Item i => Describe(i.Target) + "[...]",
        _ => "value",
    };

    private static object? Unary(string op, object? value) => op switch
    {
        "not" => !PythonValues.Truthy(value),
        "-" => value switch
        {
            long n => (object)-n,
            double d => -d,
            bool b => b ? -1L : 0L,
            _ => throw new TemplateException($"bad operand for unary -: {PythonValues.TypeName(value)}"),
        },
        "+" => PythonValues.IsNumber(value) ? value : throw new TemplateException($"bad operand for unary +: {PythonValues.TypeName(value)}"),
        _ => throw new TemplateException($"unknown operator {op}"),
    };

    public static object? Binary(string op, object? left, object? right)
    {
        switch (op)
        {
            case "==": return PythonValues.AreEqual(left, right);
            case "!=": return !PythonValues.AreEqual(left, right);
            case "<": return PythonValues.Compare(left, right) < 0;
            case ">": return PythonValues.Compare(left, right) > 0;
            case "<=": return PythonValues.Compare(left, right) <= 0;
            case ">=": return PythonValues.Compare(left, right) >= 0;
            case "in": return Contains(right, left);
            case "not in": return !Contains(right, left);
            case "~": return PythonValues.Str(left) + PythonValues.Str(right);
        }

        if (left is Undefined || right is Undefined)
            throw new TemplateException($"'{(left as Undefined ?? (Undefined)right!).Name}' is undefined");
        return (op, left, right) switch
        {
            ("+", string a, string b) => a + b,
            ("+", List<object?> a, List<object?> b) => a.Concat(b).ToList(),
            ("*", string a, long n) => string.Concat(Enumerable.Repeat(a, (int)Math.Max(0, n))),
            ("*", long n, string a) => string.Concat(Enumerable.Repeat(a, (int)Math.Max(0, n))),
            ("*", List<object?> a, long n) => Enumerable.Repeat(a, (int)Math.Max(0, n)).SelectMany(x => x).ToList(),
            _ when PythonValues.IsNumber(left) && PythonValues.IsNumber(right) => Arithmetic(op, left, right),
            _ => throw new TemplateException($"unsupported operand types for {op}: {PythonValues.TypeName(left)} and {PythonValues.TypeName(right)}"),
        };
    }

    private static object Arithmetic(string op, object? left, object? right)
    {
        bool integral = left is not double && right is not double;
        if (integral)
        {
            long a = PythonValues.ToLong(left), b = PythonValues.ToLong(right);
            switch (op)
            {
                case "+": return a + b;
                case "-": return a - b;
                case "*": return a * b;
                case "//": return b == 0 ? throw new TemplateException("integer division by zero") : FloorDiv(a, b);
                case "%": return b == 0 ? throw new TemplateException("integer modulo by zero") : a - b * FloorDiv(a, b);
                case "**" when b >= 0: return (long)Math.Pow(a, b);
            }
        }

        double x = PythonValues.ToDouble(left), y = PythonValues.ToDouble(right);
        return op switch
        {
            "+" => x + y,
            "-" => x - y,
            "*" => x * y,
            "/" => y == 0 ? throw new TemplateException("division by zero") : x / y,
            "//" => y == 0 ? throw new TemplateException("float floor division by zero") : Math.Floor(x / y),
            "%" => y == 0 ? throw new TemplateException("float modulo") : x - y * Math.Floor(x / y),
            "**" => Math.Pow(x, y),
            _ => throw new TemplateException($"unknown operator {op}"),
        };
    }

    private static long FloorDiv(long a, long b) => a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);

    private static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw new TemplateException($"'in <string>' requires a string, not {PythonValues.TypeName(item)}"),
        List<object?> l => l.Any(x => PythonValues.AreEqual(x, item)),
        Dictionary<string, object?> m => item is string key && m.ContainsKey(key),
        Undefined => false,
        _ => throw new TemplateException($"argument of type {PythonValues.TypeName(container)} is not iterable"),
    };
}
