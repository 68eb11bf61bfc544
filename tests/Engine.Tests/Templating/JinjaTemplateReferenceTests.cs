using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Serving.Engine.Templating;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Templating;

/// <summary>
/// Chat templates rendered by <see cref="JinjaTemplate"/> against what Python's jinja2 rendered for the same
/// conversations with transformers' settings (Reference/renderings.json, made by Reference/make_renderings.py): the
/// official Llama-3, Qwen2.5, Qwen3, Gemma 3 and DeepSeek-V3 templates loaded from the npm packages they ship in, Serving's own Llama-2,
/// Mistral and Llama-3.1 equivalents, and a template running every supported construct. 25 conversations each (with
/// and without the generation prompt): multi-turn, empty system, thinking history, tools and tool calls, unicode,
/// literal special-token text; a template's raise_exception must raise with jinja2's message, and an operation Python
/// refuses (DeepSeek-V3's template adding a tool result that is an object to a string) must fail here too.
/// </summary>
public sealed class JinjaTemplateReferenceTests
{
    private static readonly Lazy<JsonObject> Fixture = new(() =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(ReferencePaths.Renderings, "renderings.json")))!);

    public static TheoryData<string> Templates => new(((JsonArray)Fixture.Value["templates"]!).Select(t => (string)t!["name"]!));

    [Theory]
    [MemberData(nameof(Templates))]
    public void Render_EveryConversation_EqualsJinja2(string name)
    {
        var entry = ((JsonArray)Fixture.Value["templates"]!).Single(t => (string)t!["name"]! == name)!;
        string source = Source(entry);
        Assert.Equal((string)entry["sha256"]!, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(source))));
        var template = JinjaTemplate.Parse(source);
        var conversations = (JsonArray)Fixture.Value["conversations"]!;
        var now = DateTimeOffset.Parse((string)Fixture.Value["now"]!, System.Globalization.CultureInfo.InvariantCulture);
        var failures = new List<string>();
        int cases = 0;
        foreach (var c in (JsonArray)entry["cases"]!)
        {
            cases++;
            var conversation = conversations[(int)c!["conversation"]!]!;
            var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["messages"] = JinjaTemplate.FromJson(conversation["messages"]),
                ["tools"] = JinjaTemplate.FromJson(conversation["tools"]),
                ["documents"] = null,
                ["add_generation_prompt"] = (bool)c["add_generation_prompt"]!,
                ["bos_token"] = (string)entry["bos_token"]!,
                ["eos_token"] = (string)entry["eos_token"]!,
            };
            foreach (var (key, value) in (JsonObject?)conversation["kwargs"] ?? [])
                variables[key] = JinjaTemplate.FromJson(value);
            string label = $"conversation {(int)c["conversation"]!}, add_generation_prompt={(bool)c["add_generation_prompt"]!}";
            try
            {
                string actual = template.Render(variables, now);
                if (c["error"] is JsonNode error)
                    failures.Add($"{label}: jinja2 raised '{(string)error!}', this rendered");
                else if (c["failure"] is JsonNode failure)
                    failures.Add($"{label}: jinja2 failed ({(string)failure!}), this rendered «{actual}»");
                else if (actual != (string)c["expected"]!)
                    failures.Add($"{label}: {FirstDifference((string)c["expected"]!, actual)}");
            }
            catch (TemplateException ex)
            {
                // raise_exception must raise with jinja2's message; an operation Python refuses (str + dict) must fail too.
                bool expected = c["error"] is JsonNode error ? ex is TemplateRaisedException && ex.Message == (string)error!
                    : c["failure"] is not null && ex is not TemplateRaisedException;
                if (!expected)
                    failures.Add($"{label}: threw {ex.GetType().Name} '{ex.Message}'" + (c["error"] is JsonNode e ? $", jinja2 raised '{(string)e!}'" : ""));
            }
        }

        Assert.True(cases >= 40, $"only {cases} cases");
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases} renderings differ:\n{string.Join("\n", failures.Take(5))}");
    }

    private static string Source(JsonNode entry) => entry["package"] is JsonNode package
        ? (string)JsonNode.Parse(File.ReadAllText(ReferencePaths.Package((string)package!, (string)entry["file"]!)))!["chat_template"]!
        : File.ReadAllText(Path.Combine(ReferencePaths.Renderings, (string)entry["file"]!));

    private static string FirstDifference(string expected, string actual)
    {
        int i = 0;
        while (i < expected.Length && i < actual.Length && expected[i] == actual[i])
            i++;
        string Around(string s) => s.Substring(Math.Max(0, i - 40), Math.Min(s.Length, i + 40) - Math.Max(0, i - 40)).Replace("\n", "\\n", StringComparison.Ordinal);
        return $"first difference at {i}: expected «{Around(expected)}», got «{Around(actual)}»";
    }
}
