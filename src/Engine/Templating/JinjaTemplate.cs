using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Engine.Templating;

/// <summary>
/// A Jinja2-compatible template, parsed once: the model's own chat template, rendered as transformers'
/// <c>apply_chat_template</c> does (whitespace control <c>trim_blocks</c> and <c>lstrip_blocks</c>, the globals
/// <c>raise_exception</c>, <c>strftime_now</c>, <c>namespace</c>, <c>range</c>, <c>dict</c>, transformers' <c>tojson</c>).
/// No Jinja library is served on NuGet; like llama.cpp's minja, this implements the subset real templates use, and
/// refuses the rest by name at parse time.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly IReadOnlyList<TemplateNode> _nodes;

    private JinjaTemplate(IReadOnlyList<TemplateNode> nodes) => _nodes = nodes;

    /// <exception cref="TemplateException">A syntax error or an unsupported construct, named with its line.</exception>
    public static JinjaTemplate Parse(string source) => new(TemplateParser.Parse(source));

    /// <summary>Whether the template loops over a message's content: it takes lists of content parts (<see cref="ContentPartsDetector"/>).</summary>
    public bool IteratesMessageContent => ContentPartsDetector.IteratesMessageContent(_nodes);

    /// <summary>Renders the template.</summary>
    /// <param name="variables">Template values (see <see cref="PythonValues"/>; <see cref="FromJson(JsonElement)"/> converts JSON).</param>
    /// <param name="now">The clock <c>strftime_now</c> reads (local time, as Python's <c>datetime.now()</c>).</param>
    public string Render(IReadOnlyDictionary<string, object?> variables, DateTimeOffset now)
    {
        var globals = new TemplateFrame(null);
        globals.Set("range", new TemplateCallable("range", (a, _) => Range(a)));
        globals.Set("namespace", new TemplateCallable("namespace", (a, k) =>
        {
            var ns = new TemplateNamespace();
            if (a.Count > 0 && a[0] is Dictionary<string, object?> initial)
                foreach (var (key, value) in initial)
                    ns.Attributes[key] = value;
            foreach (var (key, value) in k)
                ns.Attributes[key] = value;
            return ns;
        }));
        globals.Set("dict", new TemplateCallable("dict", (_, k) => k.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal)));
        globals.Set("raise_exception", new TemplateCallable("raise_exception", (a, _) =>
            throw new TemplateRaisedException(a.Count > 0 ? PythonValues.Str(a[0]) : "the chat template refused the request")));
        globals.Set("strftime_now", new TemplateCallable("strftime_now", (a, _) => PythonStrftime.Format(now, a.Count > 0 ? PythonValues.Str(a[0]) : "")));
        var frame = new TemplateFrame(globals);
        foreach (var (name, value) in variables)
            frame.Set(name, value);
        return new TemplateRenderer().Render(_nodes, frame);
    }

    private static List<object?> Range(IReadOnlyList<object?> args)
    {
        long start = 0, stop, step = 1;
        switch (args.Count)
        {
            case 1: stop = PythonValues.ToLong(args[0]); break;
            case 2: (start, stop) = (PythonValues.ToLong(args[0]), PythonValues.ToLong(args[1])); break;
            case 3: (start, stop, step) = (PythonValues.ToLong(args[0]), PythonValues.ToLong(args[1]), PythonValues.ToLong(args[2])); break;
            default: throw new TemplateException("range takes 1 to 3 integers");
        }

        if (step == 0)
            throw new TemplateException("range() step must not be zero");
        var result = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            result.Add(i);
            if (result.Count > 1_000_000)
                throw new TemplateException("range() is too long for a chat template");
        }

        return result;
    }

    /// <summary>
    /// A request's JSON (messages, tools, extra template arguments) as template values, read as Python's <c>json</c>
    /// reads it: integers stay integers, other numbers are floats, and a key given twice in one object takes its last value.
    /// </summary>
    public static object? FromJson(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var o = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var p in element.EnumerateObject())
                    o[p.Name] = FromJson(p.Value);
                return o;
            case JsonValueKind.Array:
                var a = new List<object?>(element.GetArrayLength());
                foreach (var item in element.EnumerateArray())
                    a.Add(FromJson(item));
                return a;
            case JsonValueKind.String:
                return element.GetString();
            case JsonValueKind.True:
                return true;
            case JsonValueKind.False:
                return false;
            case JsonValueKind.Number:
                return element.TryGetInt64(out long n) ? n : (object)double.Parse(element.GetRawText(), CultureInfo.InvariantCulture);
            default:
                return null;
        }
    }

    /// <summary>JSON as template values, as <see cref="FromJson(JsonElement)"/> (the tests' conversations are <see cref="JsonNode"/>s).</summary>
    public static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.ToDictionary(kv => kv.Key, kv => FromJson(kv.Value), StringComparer.Ordinal),
        JsonArray a => a.Select(FromJson).ToList(),
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null => null,
            JsonValueKind.Number => long.TryParse(v.ToJsonString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n)
                ? (object)n : double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture),
            _ => v.ToJsonString(),
        },
        _ => null,
    };
}
