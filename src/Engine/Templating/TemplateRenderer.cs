using System.Text;

namespace Serving.Engine.Templating;

/// <summary>
/// Renders parsed statements into text. Control flow out of loop bodies (<c>break</c>, <c>continue</c>) is a returned
/// signal, not an exception; each loop iteration and each macro call gets its own <see cref="TemplateFrame"/>.
/// </summary>
internal sealed class TemplateRenderer
{
    private const int MaxOutputChars = 64 << 20;
    private const int MaxMacroDepth = 64;
    private readonly ExpressionEvaluator _evaluator;
    private int _macroDepth;

    public TemplateRenderer() => _evaluator = new ExpressionEvaluator(this);

    public TemplateFilters Filters { get; } = new();

    private enum Signal
    {
        None,
        Break,
        Continue,
    }

    public string Render(IReadOnlyList<TemplateNode> nodes, TemplateFrame frame)
    {
        var output = new StringBuilder();
        Render(nodes, frame, output);
        return output.ToString();
    }

    private Signal Render(IReadOnlyList<TemplateNode> nodes, TemplateFrame frame, StringBuilder output)
    {
        foreach (var node in nodes)
        {
            var signal = Render(node, frame, output);
            if (signal != Signal.None)
                return signal;
            if (output.Length > MaxOutputChars)
                throw new TemplateException($"the rendered template is longer than {MaxOutputChars} characters");
        }

        return Signal.None;
    }

    private Signal Render(TemplateNode node, TemplateFrame frame, StringBuilder output)
    {
        switch (node)
        {
            case TemplateNode.Text t:
                output.Append(t.Value);
                return Signal.None;
            case TemplateNode.Output o:
                output.Append(PythonValues.Str(Evaluate(o.Value, frame, o.Line)));
                return Signal.None;
            case TemplateNode.If i:
                foreach (var (condition, body) in i.Branches)
                    if (PythonValues.Truthy(_evaluator.Evaluate(condition, frame)))
                        return Render(body, frame, output);
                return Render(i.Else, frame, output);
            case TemplateNode.For f:
                return For(f, frame, output);
            case TemplateNode.Set s:
                Assign(s, frame);
                return Signal.None;
            case TemplateNode.SetBlock b:
                frame.Set(b.Target, ApplyFilters(b.Filters, Render(b.Body, new TemplateFrame(frame)), frame));
                return Signal.None;
            case TemplateNode.FilterBlock fb:
                output.Append(PythonValues.Str(ApplyFilters(fb.Filters, Render(fb.Body, new TemplateFrame(frame)), frame)));
                return Signal.None;
            case TemplateNode.Macro m:
                frame.Set(m.Name, Macro(m, frame));
                return Signal.None;
            case TemplateNode.Break:
                return Signal.Break;
            case TemplateNode.Continue:
                return Signal.Continue;
            default:
                throw new TemplateException($"cannot render {node.GetType().Name}");
        }
    }

    private object? Evaluate(TemplateExpression expression, TemplateFrame frame, int line)
    {
        try
        {
            return _evaluator.Evaluate(expression, frame);
        }
        catch (TemplateRaisedException)
        {
            throw;
        }
        catch (TemplateException ex) when (!ex.Message.StartsWith("line ", StringComparison.Ordinal))
        {
            throw new TemplateException($"line {line}: {ex.Message}");
        }
    }

    private Signal For(TemplateNode.For f, TemplateFrame frame, StringBuilder output)
    {
        var items = PythonValues.Iterate(Evaluate(f.Items, frame, f.Line));
        if (f.Filter is not null)
        {
            items = items.Where(item =>
            {
                var probe = new TemplateFrame(frame);
                Bind(f.Targets, item, probe);
                return PythonValues.Truthy(_evaluator.Evaluate(f.Filter, probe));
            }).ToList();
        }

        if (items.Count == 0)
            return Render(f.Else, frame, output);
        var loop = new TemplateLoop(items);
        for (int i = 0; i < items.Count; i++)
        {
            var iteration = new TemplateFrame(frame);
            loop.Index0 = i;
            iteration.Set("loop", loop);
            Bind(f.Targets, items[i], iteration);
            if (Render(f.Body, iteration, output) == Signal.Break)
                break;
        }

        return Signal.None;
    }

    private static void Bind(IReadOnlyList<string> targets, object? value, TemplateFrame frame)
    {
        if (targets.Count == 1)
        {
            frame.Set(targets[0], value);
            return;
        }

        var parts = PythonValues.Iterate(value);
        if (parts.Count != targets.Count)
            throw new TemplateException($"cannot unpack {parts.Count} values into {targets.Count} names");
        for (int i = 0; i < targets.Count; i++)
            frame.Set(targets[i], parts[i]);
    }

    private void Assign(TemplateNode.Set s, TemplateFrame frame)
    {
        var value = Evaluate(s.Value, frame, s.Line);
        if (s.Attribute is null)
        {
            Bind(s.Targets, value, frame);
            return;
        }

        if (!frame.TryGet(s.Targets[0], out var target) || target is not TemplateNamespace ns)
            throw new TemplateException($"line {s.Line}: only namespace() objects take attribute assignments ('{s.Targets[0]}.{s.Attribute}')");
        ns.Attributes[s.Attribute] = value;
    }

    private object? ApplyFilters(IReadOnlyList<TemplateExpression.Filter> filters, object? value, TemplateFrame frame)
    {
        foreach (var f in filters)
            value = Filters.Apply(f.Name, value, f.Arguments.Select(a => _evaluator.Evaluate(a, frame)).ToList(),
                f.Keywords.ToDictionary(k => k.Name, k => _evaluator.Evaluate(k.Value, frame), StringComparer.Ordinal));
        return value;
    }

    private TemplateCallable Macro(TemplateNode.Macro m, TemplateFrame defined) => new(m.Name, (args, keywords) =>
    {
        if (++_macroDepth > MaxMacroDepth)
            throw new TemplateException($"macro '{m.Name}' recursed deeper than {MaxMacroDepth} calls");
        try
        {
            var call = new TemplateFrame(defined);
            for (int i = 0; i < m.Parameters.Count; i++)
            {
                var (name, fallback) = m.Parameters[i];
                call.Set(name, i < args.Count ? args[i]
                    : keywords.TryGetValue(name, out var v) ? v
                    : fallback is null ? Undefined.Named(name) : _evaluator.Evaluate(fallback, call));
            }

            if (args.Count > m.Parameters.Count)
                throw new TemplateException($"macro '{m.Name}' takes {m.Parameters.Count} arguments, got {args.Count}");
            return Render(m.Body, call);
        }
        finally
        {
            _macroDepth--;
        }
    });
}
