using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Engine.Templating;

namespace Serving.Engine.Tests.Templating;

/// <summary>A request's JSON as template values: what Python's json would give the template.</summary>
public sealed class TemplateValuesTests
{
    private const string Document = """
        {"s": "text é", "i": 42, "neg": -7, "big": 9007199254740993, "f": 1.0, "e": 2e3, "t": true, "n": null,
         "list": [1, "two", [3.5], {"k": false}], "nested": {"a": {"b": [null]}}}
        """;

    [Fact]
    public void FromJson_Element_SameValuesAsFromANode()
    {
        using var doc = JsonDocument.Parse(Document);
        var fromElement = JinjaTemplate.FromJson(doc.RootElement);
        Assert.Equal(JsonSerializer.Serialize(JinjaTemplate.FromJson(JsonNode.Parse(Document))), JsonSerializer.Serialize(fromElement));
        var o = (Dictionary<string, object?>)fromElement!;
        Assert.Equal((42L, 9007199254740993L, 1.0, 2000.0), ((long)o["i"]!, (long)o["big"]!, (double)o["f"]!, (double)o["e"]!));
    }

    [Fact]
    public void FromJson_KeyGivenTwice_TakesTheLastValue()
    {
        using var doc = JsonDocument.Parse("""{"content": "first", "x": {"y": 1, "y": 2}, "content": "second"}""");
        var o = (Dictionary<string, object?>)JinjaTemplate.FromJson(doc.RootElement)!;
        Assert.Equal("second", o["content"]);
        Assert.Equal(2L, ((Dictionary<string, object?>)o["x"]!)["y"]);
    }
}
