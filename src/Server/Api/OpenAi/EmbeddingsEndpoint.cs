using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Serving.Server.Requests;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// <c>POST /v1/embeddings</c> (OpenAI's shape): each input's embedding is its last token's final hidden state — how
/// decoder embedding models pool (Qwen3-Embedding, gte-Qwen2, e5-mistral) — under the adapter <c>model</c> names (or routes
/// to), so tenants' embedding adapters batch together as their generation does (<see cref="PromptEmbedder"/>). Optionally
/// cut to its first <c>dimensions</c> (Matryoshka), then L2-normalised (vLLM's <c>normalize</c>, true by default);
/// <c>encoding_format</c> <c>float</c> or <c>base64</c> (little-endian float32).
/// </summary>
internal sealed class EmbeddingsEndpoint(PromptEmbedder embedder)
{
    public async Task HandleAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        using var doc = await RequestBody.ReadAsync(ctx.Request, ct);
        var f = new JsonFields(doc.RootElement);
        string format = f.String("encoding_format") ?? "float";
        if (format is not ("float" or "base64"))
            throw JsonFields.Bad("encoding_format", $"must be float or base64, got '{format}'");
        int? dimensions = f.Int("dimensions", int.MinValue, int.MaxValue);      // its range is PromptEmbedder's to check
        bool normalize = f.Bool("normalize") ?? embedder.NormalizesByDefault;
        var (vectors, inputs, modelName) = await embedder.EmbedAsync(f, Security.AuthenticationMiddleware.CallerOf(ctx),
            tokenize => CompletionPromptReader.Read(f, text => tokenize(text, true), "input", PromptEmbedder.MaxInputs), dimensions, normalize, ct);

        var data = new JsonArray();
        for (int i = 0; i < vectors.Length; i++)
            data.Add(new JsonObject
            {
                ["object"] = "embedding",
                ["index"] = i,
                ["embedding"] = format == "base64" ? Convert.ToBase64String(MemoryMarshal.AsBytes(vectors[i].AsSpan()))
                    : new JsonArray([.. vectors[i].Select(v => (JsonNode)v)]),
            });
        int tokens = inputs.Sum(p => p.Count);
        await Results.Json(new JsonObject
        {
            ["object"] = "list",
            ["data"] = data,
            ["model"] = modelName,
            ["usage"] = new JsonObject { ["prompt_tokens"] = tokens, ["total_tokens"] = tokens },
        }).ExecuteAsync(ctx);
    }
}
