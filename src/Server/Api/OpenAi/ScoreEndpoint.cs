using System.Text.Json;
using System.Text.Json.Nodes;
using Serving.Server.Requests;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// vLLM's score and rerank APIs for embedding models: a pair's score is the cosine similarity of the two texts'
/// embeddings (<see cref="PromptEmbedder"/>, normalised, so their dot product), as vLLM scores with a bi-encoder.
/// <c>POST /score</c> (and <c>/v1/score</c>): <c>text_1</c> a string or list, <c>text_2</c> likewise — one against each,
/// or pairs of two lists of the same length. <c>POST /rerank</c> (and <c>/v1/rerank</c>, <c>/v2/rerank</c>; Jina's and
/// Cohere's shape): <c>query</c> against <c>documents</c>, most relevant first, <c>top_n</c> of them. Instructions (a
/// Qwen3-Embedding query's <c>Instruct: …</c>) are the caller's to write.
/// <para>
/// With <c>--score-tokens NO,YES</c> (<see cref="TokenClassifier"/>) the model scores each pair itself, as a cross-encoder:
/// the pair's prompt is the first text's tokens (with the tokenizer's special tokens) then the second's (without), as a
/// tokenizer encodes a text pair with no pair template, and its score is P(YES) among the two tokens at its last position
/// — how vLLM serves Qwen3-Reranker; the reranker's prompt format (its instruction, the <c>&lt;Query&gt;</c> and
/// <c>&lt;Document&gt;</c> lines, the assistant turn) is the caller's to write around the texts, as in vLLM's example.
/// </para>
/// </summary>
internal sealed class ScoreEndpoint(PromptEmbedder embedder, TokenClassifier classifier)
{
    public async Task ScoreAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        using var doc = await RequestBody.ReadAsync(ctx.Request, ct);
        var f = new JsonFields(doc.RootElement);
        var first = Texts(f, "text_1");
        var second = Texts(f, "text_2");
        if (first.Count != 1 && first.Count != second.Count)
            throw JsonFields.Bad("text_1", $"holds {first.Count} texts: give one, or as many as text_2 ({second.Count})");
        var (scores, tokens, model) = await ScoresAsync(f, ctx, [.. second.Select((text, i) => (first[first.Count == 1 ? 0 : i], text))], ct);
        var data = new JsonArray();
        for (int i = 0; i < second.Count; i++)
            data.Add(new JsonObject { ["index"] = i, ["object"] = "score", ["score"] = scores[i] });
        await Results.Json(new JsonObject
        {
            ["id"] = "score-" + Guid.NewGuid().ToString("N"),
            ["object"] = "list",
            ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ["model"] = model,
            ["data"] = data,
            ["usage"] = new JsonObject { ["prompt_tokens"] = tokens, ["total_tokens"] = tokens },
        }).ExecuteAsync(ctx);
    }

    public async Task RerankAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        using var doc = await RequestBody.ReadAsync(ctx.Request, ct);
        var f = new JsonFields(doc.RootElement);
        string query = f.String("query") ?? throw JsonFields.Bad("query", "must be a string");
        var documents = Texts(f, "documents");
        int topN = f.Int("top_n", 1, int.MaxValue) ?? documents.Count;
        var (scores, tokens, model) = await ScoresAsync(f, ctx, [.. documents.Select(d => (query, d))], ct);
        var ranked = documents.Select((text, i) => (Index: i, Text: text, Score: scores[i]))
            .OrderByDescending(d => d.Score).ThenBy(d => d.Index).Take(topN);
        await Results.Json(new JsonObject
        {
            ["id"] = "rerank-" + Guid.NewGuid().ToString("N"),
            ["model"] = model,
            ["usage"] = new JsonObject { ["total_tokens"] = tokens },
            ["results"] = new JsonArray([.. ranked.Select(d => (JsonNode)new JsonObject
            {
                ["index"] = d.Index, ["document"] = new JsonObject { ["text"] = d.Text }, ["relevance_score"] = d.Score,
            })]),
        }).ExecuteAsync(ctx);
    }

    /// <summary>
    /// Each pair's score under the request's <c>model</c> — the cosine of its texts' embeddings, or the model's own P(YES)
    /// with classifier tokens — the prompt tokens they took, and the model's name.
    /// </summary>
    private async Task<(double[] Scores, int Tokens, string Model)> ScoresAsync(JsonFields f, HttpContext ctx, List<(string First, string Second)> pairs,
        CancellationToken ct)
    {
        var caller = Security.AuthenticationMiddleware.CallerOf(ctx);
        if (classifier.Tokens is not null)
        {
            if (pairs.Count > PromptEmbedder.MaxInputs)
                throw ApiException.BadRequest($"at most {PromptEmbedder.MaxInputs} pairs may be scored at once, got {pairs.Count}");
            var (states, prompts, name) = await embedder.EmbedAsync(f, caller,
                tokenize => [.. pairs.Select(p => (IReadOnlyList<int>)[.. tokenize(p.First, true), .. tokenize(p.Second, false)])], null, false, ct, forScores: true);
            return ([.. states.Select(classifier.Score)], prompts.Sum(p => p.Count), name);
        }

        // One embedding per distinct text: a query against many documents is embedded once.
        var texts = pairs.SelectMany(p => new[] { p.First, p.Second }).Distinct(StringComparer.Ordinal).ToList();
        if (texts.Count > PromptEmbedder.MaxInputs)
            throw ApiException.BadRequest($"at most {PromptEmbedder.MaxInputs} texts may be scored at once, got {texts.Count}");
        var (vectors, inputs, modelName) = await embedder.EmbedAsync(f, caller,
            tokenize => [.. texts.Select(text => (IReadOnlyList<int>)tokenize(text, true))], null, normalize: true, ct);
        var index = texts.Select((text, i) => (text, i)).ToDictionary(x => x.text, x => x.i, StringComparer.Ordinal);
        return ([.. pairs.Select(p => Dot(vectors[index[p.First]], vectors[index[p.Second]]))], inputs.Sum(p => p.Count), modelName);
    }

    /// <summary>A string, or a non-empty list of strings.</summary>
    private static List<string> Texts(JsonFields f, string name) => f.Get(name) switch
    {
        { ValueKind: JsonValueKind.String } text => [text.GetString()!],
        { ValueKind: JsonValueKind.Array } list when list.GetArrayLength() > 0 && list.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) =>
            [.. list.EnumerateArray().Select(e => e.GetString()!)],
        _ => throw JsonFields.Bad(name, "must be a string or a non-empty list of strings"),
    };

    private static double Dot(float[] a, float[] b) => System.Numerics.Tensors.TensorPrimitives.Dot(a, b);
}
