using System.Text.Json.Nodes;
using Serving.Runtime.Hosting;
using Serving.Contracts.Generation;

namespace Serving.Server.Api.OpenAi;

/// <summary>OpenAI's two logprobs shapes: the legacy completions one and the chat one.</summary>
internal static class LogprobsFormatter
{
    public static JsonObject Completion(IReadOnlyList<TokenEvent> events, ServedModel model, int textOffset)
    {
        var tokens = new JsonArray();
        var logprobs = new JsonArray();
        var top = new JsonArray();
        var offsets = new JsonArray();
        int offset = textOffset;
        foreach (var e in events)
        {
            string text = model.TokenText(e.Token.Id);
            tokens.Add(text);
            logprobs.Add(e.Token.Logprob);
            var alternatives = new JsonObject();
            foreach (var (id, lp) in e.Token.TopLogprobs)
                alternatives[model.TokenText(id)] ??= lp;
            top.Add(alternatives);
            offsets.Add(offset);
            offset += e.TextDelta.Length;
        }

        return new JsonObject { ["tokens"] = tokens, ["token_logprobs"] = logprobs, ["top_logprobs"] = top, ["text_offset"] = offsets };
    }

    public static JsonObject Chat(IReadOnlyList<TokenEvent> events, ServedModel model)
    {
        var content = new JsonArray();
        foreach (var e in events)
        {
            var top = new JsonArray();
            foreach (var (id, lp) in e.Token.TopLogprobs)
                top.Add(Entry(model, id, lp));
            var entry = Entry(model, e.Token.Id, e.Token.Logprob);
            entry["top_logprobs"] = top;
            content.Add(entry);
        }

        return new JsonObject { ["content"] = content };
    }

    private static JsonObject Entry(ServedModel model, int id, float logprob) => new()
    {
        ["token"] = model.TokenText(id),
        ["logprob"] = logprob,
        ["bytes"] = new JsonArray((model.TokenBytes(id) ?? []).Select(b => (JsonNode)(int)b).ToArray()),
    };
}
