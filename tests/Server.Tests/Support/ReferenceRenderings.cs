using System.Text.Json.Nodes;

namespace Serving.Server.Tests.Support;

/// <summary>
/// The conversations the template tests render with Python's jinja2 (tests/Engine.Tests/Templating/Reference), sent to a
/// running server's <c>/tokenize</c>: each must come back as exactly the tokens of jinja2's text.
/// </summary>
internal static class ReferenceRenderings
{
    /// <summary>Checks every case of <paramref name="template"/> jinja2 rendered against <paramref name="model"/>; returns how many it checked.</summary>
    public static async Task<int> AssertServedAsJinja2RendersAsync(ServerProcess server, string model, string template)
    {
        var renderings = JsonNode.Parse(File.ReadAllText(Path.Combine(ReferencePaths.Renderings, "renderings.json")))!;
        var conversations = renderings["conversations"]!.AsArray();
        var cases = renderings["templates"]!.AsArray().Single(t => (string)t!["name"]! == template)!["cases"]!.AsArray();
        var failures = new List<string>();
        int checkedCases = 0;
        foreach (var c in cases)
        {
            if (c!["expected"] is null)
                continue;                                       // a case jinja2 refused: the template tests check those
            var conversation = conversations[(int)c["conversation"]!]!;
            var request = new JsonObject
            {
                ["model"] = model,
                ["messages"] = conversation["messages"]!.DeepClone(),
                ["add_generation_prompt"] = (bool)c["add_generation_prompt"]!,
            };
            if (conversation["tools"] is JsonNode tools)
                request["tools"] = tools.DeepClone();
            if (conversation["kwargs"] is JsonNode kwargs)
                request["chat_template_kwargs"] = kwargs.DeepClone();
            var (status, answer) = await HttpJson.PostAsync(server.Http, "/tokenize", request);
            if (conversation["messages"]!.AsArray().Any(m => (string)m!["role"]! == "tool" && m["content"] is JsonObject))
            {
                // jinja2 renders a tool result given as an object; OpenAI's API takes a string or text parts only.
                HttpJson.AssertBadRequest(status, answer, "messages", "content must be a string or a list of text parts");
                continue;
            }

            Assert.True(status == 200, answer.ToJsonString());
            var (textStatus, text) = await HttpJson.PostAsync(server.Http, "/tokenize",
                new JsonObject { ["model"] = model, ["prompt"] = (string)c["expected"]!, ["add_special_tokens"] = false });
            Assert.True(textStatus == 200, text.ToJsonString());
            checkedCases++;
            if (answer["tokens"]!.ToJsonString() != text["tokens"]!.ToJsonString())
                failures.Add($"conversation {(int)c["conversation"]!} (generation prompt {(bool)c["add_generation_prompt"]!})");
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {checkedCases} differ: {string.Join(", ", failures)}");
        return checkedCases;
    }
}
