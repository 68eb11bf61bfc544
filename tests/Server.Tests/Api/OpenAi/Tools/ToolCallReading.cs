using System.Text.Json.Nodes;
using Serving.Server.Api.OpenAi;
using Serving.Server.Api.OpenAi.Tools;

namespace Serving.Server.Tests.Api.OpenAi.Tools;

/// <summary>Runs a text through a reader whole, and in pieces as a stream delivers it; both must give one message.</summary>
internal static class ToolCallReading
{
    public delegate ToolCallReader Factory(ChatOutput output, Func<string> newId);

    private static Func<string> Ids()
    {
        int next = 0;
        return () => $"call-{next++}";
    }

    /// <summary>The message <paramref name="text"/> gives read at once.</summary>
    public static JsonObject Whole(Factory make, string text, bool parallel = true)
    {
        var output = new ChatOutput();
        var reader = make(output, Ids());
        reader.Push(text);
        reader.Finish();
        return new ChatOutputWriter(output, parallel).Message();
    }

    /// <summary>
    /// The message rebuilt from the deltas of <paramref name="text"/> streamed in pieces cut at <paramref name="cuts"/>,
    /// as an OpenAI client assembles it (content concatenated; calls by index, arguments concatenated).
    /// </summary>
    public static JsonObject Streamed(Factory make, string text, IEnumerable<int> cuts, bool parallel = true)
    {
        var output = new ChatOutput();
        var reader = make(output, Ids());
        var writer = new ChatOutputWriter(output, parallel);
        var deltas = new List<JsonObject>();
        int from = 0;
        foreach (int cut in cuts.Where(c => c > 0 && c < text.Length).Distinct().Order().Append(text.Length))
        {
            reader.Push(text[from..cut]);
            from = cut;
            deltas.Add(writer.NextDelta());
        }

        reader.Finish();
        deltas.Add(writer.NextDelta());
        return Assemble(deltas);
    }

    public static JsonObject Assemble(IEnumerable<JsonObject> deltas)
    {
        string? content = null;
        var calls = new SortedDictionary<int, (string Id, string Name, string Arguments)>();
        foreach (var delta in deltas)
        {
            if (delta["content"] is JsonNode c)
                content = (content ?? "") + (string)c!;
            foreach (var call in delta["tool_calls"]?.AsArray() ?? [])
            {
                int index = (int)call!["index"]!;
                string arguments = (string?)call["function"]!["arguments"] ?? "";
                calls[index] = calls.TryGetValue(index, out var known)
                    ? (known.Id, known.Name, known.Arguments + arguments)
                    : ((string)call["id"]!, (string)call["function"]!["name"]!, arguments);
            }
        }

        var message = new JsonObject { ["role"] = "assistant", ["content"] = calls.Count > 0 && content is null ? null : content ?? "" };
        if (calls.Count > 0)
            message["tool_calls"] = new JsonArray(calls.Values.Select(c => (JsonNode)new JsonObject
            {
                ["id"] = c.Id,
                ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments },
            }).ToArray());
        return message;
    }

    /// <summary>Asserts that every way of streaming <paramref name="text"/> (each single cut, each character alone) gives <paramref name="expected"/>.</summary>
    public static void AssertStreamsAsWhole(Factory make, string text, JsonObject expected)
    {
        string want = expected.ToJsonString();
        Assert.Equal(want, Whole(make, text).ToJsonString());
        for (int cut = 1; cut < text.Length; cut++)
            Assert.True(want == Streamed(make, text, [cut]).ToJsonString(), $"cut at {cut}: {Streamed(make, text, [cut]).ToJsonString()}");
        Assert.Equal(want, Streamed(make, text, Enumerable.Range(1, text.Length)).ToJsonString());
    }

    public static JsonObject Message(string? content, params (string Name, string Arguments)[] calls)
    {
        var message = new JsonObject { ["role"] = "assistant", ["content"] = content };
        if (calls.Length > 0)
            message["tool_calls"] = new JsonArray(calls.Select((c, i) => (JsonNode)new JsonObject
            {
                ["id"] = $"call-{i}",
                ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments },
            }).ToArray());
        return message;
    }
}
