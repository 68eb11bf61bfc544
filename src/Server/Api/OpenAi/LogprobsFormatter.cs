using System.Text.Json.Nodes;
using Serving.Engine.Generation;
using Serving.Engine.Tokenization;

namespace Serving.Server.Api.OpenAi;

/// <summary>OpenAI's two logprobs shapes: the legacy completions one and the chat one.</summary>
internal static class LogprobsFormatter
{
    public static JsonObject Completion(IReadOnlyList<TokenEvent> events, HfTokenizer tokenizer, int textOffset)
    {
        var tokens = new JsonArray();
        var logprobs = new JsonArray();
        var top = new JsonArray();
        var offsets = new JsonArray();
        int offset = textOffset;
        foreach (var e in events)
        {
            string text = TokenText(tokenizer, e.Token.Id);
            tokens.Add(text);
            logprobs.Add(e.Token.Logprob);
            var alternatives = new JsonObject();
            foreach (var (id, lp) in e.Token.TopLogprobs)
                alternatives[TokenText(tokenizer, id)] ??= lp;
            top.Add(alternatives);
            offsets.Add(offset);
            offset += e.TextDelta.Length;
        }

        return new JsonObject { ["tokens"] = tokens, ["token_logprobs"] = logprobs, ["top_logprobs"] = top, ["text_offset"] = offsets };
    }

    public static JsonObject Chat(IReadOnlyList<TokenEvent> events, HfTokenizer tokenizer)
    {
        var content = new JsonArray();
        foreach (var e in events)
        {
            var top = new JsonArray();
            foreach (var (id, lp) in e.Token.TopLogprobs)
                top.Add(Entry(tokenizer, id, lp));
            var entry = Entry(tokenizer, e.Token.Id, e.Token.Logprob);
            entry["top_logprobs"] = top;
            content.Add(entry);
        }

        return new JsonObject { ["content"] = content };
    }

    private static JsonObject Entry(HfTokenizer tokenizer, int id, float logprob) => new()
    {
        ["token"] = TokenText(tokenizer, id),
        ["logprob"] = logprob,
        ["bytes"] = new JsonArray((tokenizer.TokenBytes(id) ?? []).Select(b => (JsonNode)(int)b).ToArray()),
    };

    private static string TokenText(HfTokenizer tokenizer, int id) => tokenizer.Decode([id], skipSpecialTokens: false);
}
