using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// Hostile structured-output requests (a tenant controls the schema and the pattern): expansion bombs through
/// <c>$ref</c> fan-out, recursion and nested repetition, huge choice lists, nesting past the JSON depth limit, and
/// patterns that make backtracking engines explode. Each is refused with a 400 naming the problem (or, for the
/// backtracking one, simply served), while ordinary requests keep being answered.
/// </summary>
public sealed class StructuredOutputAttackTests(StructuredOutputServerFixture fixture) : IClassFixture<StructuredOutputServerFixture>
{
    /// <summary>26 definitions, each an array of exactly two of the previous: 2^25 copies of the innermost if expanded.</summary>
    private static string FanOutBomb()
    {
        var defs = new JsonObject { ["d0"] = new JsonObject { ["type"] = "integer", ["minimum"] = 0, ["maximum"] = 9 } };
        for (int i = 1; i <= 25; i++)
            defs[$"d{i}"] = new JsonObject { ["type"] = "array", ["minItems"] = 2, ["maxItems"] = 2, ["items"] = new JsonObject { ["$ref"] = $"#/$defs/d{i - 1}" } };
        return new JsonObject { ["$defs"] = defs, ["$ref"] = "#/$defs/d25" }.ToJsonString();
    }

    private static string DeepNesting(int depth)
    {
        var text = new StringBuilder();
        for (int i = 0; i < depth; i++)
            text.Append("{\"type\":\"object\",\"properties\":{\"a\":");
        text.Append("{\"type\":\"null\"}");
        for (int i = 0; i < depth; i++)
            text.Append("}}");
        return text.ToString();
    }

    public static TheoryData<string, string> Bombs => new()
    {
        { JsonSerializer.Serialize(new { structured_outputs = new { json = JsonNode.Parse(FanOutBomb()) } }), "automaton states" },
        { """{"structured_outputs":{"regex":"((a{1000}){1000}){1000}"}}""", "automaton states" },
        { JsonSerializer.Serialize(new { structured_outputs = new { choice = Enumerable.Range(0, 1000).Select(i => new string((char)('a' + i % 26), 3000)).ToArray() } }), "automaton states" },
        { JsonSerializer.Serialize(new { structured_outputs = new { json = DeepNesting(70) } }), "not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(Bombs))]
    public async Task Completions_ExpansionBomb_400AndOthersStillServed(string options, string problem)
    {
        var body = JsonNode.Parse(options)!.AsObject();
        body["model"] = fixture.Model;
        body["prompt"] = "attack";
        body["max_tokens"] = 8;
        var attack = HttpJson.PostRawAsync(fixture.Http, "/v1/completions", body.ToJsonString());
        var ordinary = Enumerable.Range(0, 4).Select(i => HttpJson.PostAsync(fixture.Http, "/v1/completions",
            new { model = StructuredOutputServerFixture.Adapters[i % 3], prompt = $"ordinary {i}", max_tokens = 4, structured_outputs = new { choice = new[] { "yes", "no" } } })).ToList();
        var (status, error) = await attack;
        Assert.Equal(400, status);
        Assert.Contains(problem, (string?)error["error"]!["message"]);
        foreach (var (okStatus, answer) in await Task.WhenAll(ordinary))
        {
            Assert.Equal(200, okStatus);
            Assert.Contains((string)answer["choices"]![0]!["text"]!, new[] { "yes", "no" });
        }
    }

    [Fact]
    public async Task Completions_FloodOfDistinctBombs_EachRefusedAndOrdinaryRequestsServed()
    {
        // Each bomb is new (no cached refusal to answer it), so each is built up to the state bound; the compiler builds
        // a bounded number at once and the rest wait without a thread, while cached constraints and plain requests pass.
        var bombs = Enumerable.Range(0, 16).Select(i => HttpJson.PostAsync(fixture.Http, "/v1/completions", new
        {
            model = fixture.Model, prompt = "attack", max_tokens = 4,
            structured_outputs = new { regex = $"(x{{1000}}){{{600 + i}}}" },
        })).ToList();
        var ordinary = Enumerable.Range(0, 6).Select(i => HttpJson.PostAsync(fixture.Http, "/v1/completions", i % 2 == 0
            ? (object)new { model = StructuredOutputServerFixture.Adapters[i % 3], prompt = $"ordinary {i}", max_tokens = 4, structured_outputs = new { choice = new[] { "yes", "no" } } }
            : new { model = StructuredOutputServerFixture.Adapters[i % 3], prompt = $"ordinary {i}", max_tokens = 4 })).ToList();
        foreach (var (status, error) in await Task.WhenAll(bombs))
        {
            Assert.Equal(400, status);
            Assert.Contains("automaton states", (string?)error["error"]!["message"]);
        }

        foreach (var (status, _) in await Task.WhenAll(ordinary))
            Assert.Equal(200, status);
        var (againStatus, again) = await HttpJson.PostAsync(fixture.Http, "/v1/completions",
            new { model = fixture.Model, prompt = "attack", max_tokens = 4, structured_outputs = new { regex = "(x{1000}){600}" } });
        Assert.Equal(400, againStatus);                                        // refused again from the compiler's memory
        Assert.Contains("automaton states", (string?)again["error"]!["message"]);
    }

    [Fact]
    public async Task Completions_RecursiveSchemaUnderARepetition_ServedAsOneMachine()
    {
        // Unrolled 3 levels deep, 1000 items of 1000 items of 1000 blew the state bound; as a machine called from its
        // items it is a few thousand states.
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "/v1/completions", new
        {
            model = fixture.Model, prompt = "attack", max_tokens = 16,
            structured_outputs = JsonNode.Parse("""{"json":{"$defs":{"n":{"type":"array","maxItems":1000,"items":{"$ref":"#/$defs/n"}}},"$ref":"#/$defs/n"}}"""),
        });

        Assert.Equal(200, status);
        Assert.StartsWith("[", (string)body["choices"]![0]!["text"]!);
    }

    [Fact]
    public async Task Completions_PatternThatExplodesBacktrackingEngines_ServedInLinearTime()
    {
        // (a+)+$ against "aaaa…b" takes exponential time in a backtracking matcher; an automaton has no backtracking.
        var (status, body) = await HttpJson.PostAsync(fixture.Http, "/v1/completions", new
        {
            model = fixture.Model, prompt = "aaaa", max_tokens = 40, temperature = 0,
            structured_outputs = new { regex = "(a+)+(b|c)" },
        });
        Assert.Equal(200, status);
        string text = (string)body["choices"]![0]!["text"]!;
        Assert.Matches("^(a+)+(b|c)$", (string)body["choices"]![0]!["finish_reason"]! == "stop" ? text : text + "b");
    }
}
