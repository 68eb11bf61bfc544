namespace Serving.Engine.Templating;

/// <summary>The <c>loop</c> variable inside a <c>for</c>: position, neighbours and <c>cycle</c>.</summary>
internal sealed class TemplateLoop(List<object?> items)
{
    public int Index0 { get; set; }

    public object? Get(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(items.Count - Index0),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "previtem" => Index0 > 0 ? items[Index0 - 1] : Undefined.Named("loop.previtem"),
        "nextitem" => Index0 + 1 < items.Count ? items[Index0 + 1] : Undefined.Named("loop.nextitem"),
        "depth" => 1L,
        "depth0" => 0L,
        "cycle" => new TemplateCallable("loop.cycle", (args, _) =>
            args.Count == 0 ? throw new TemplateException("loop.cycle needs at least one value") : args[Index0 % args.Count]),
        _ => Undefined.Named("loop." + name),
    };
}
