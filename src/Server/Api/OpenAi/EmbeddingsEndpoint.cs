using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Serving.Contracts.Generation;
using Serving.Runtime.Generation;
using Serving.Server.Requests;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// <c>POST /v1/embeddings</c> (OpenAI's shape): each input's embedding is its last token's final hidden state — how
/// decoder embedding models pool (Qwen3-Embedding, gte-Qwen2, e5-mistral) — under the adapter <c>model</c> names (or routes
/// to), so tenants' embedding adapters batch together as their generation does. Optionally cut to its first
/// <c>dimensions</c> (Matryoshka), then L2-normalised (vLLM's <c>normalize</c>, true by default); <c>encoding_format</c>
/// <c>float</c> or <c>base64</c> (little-endian float32). Inputs run as engine requests, at most
/// <see cref="InputsInFlight"/> of one call at a time, so a call of many inputs queues behind no one and is not refused for
/// the queue's bound.
/// </summary>
internal sealed class EmbeddingsEndpoint(GenerationRequestStage stage, GenerationClient client)
{
    /// <summary>The most inputs one call may hold (OpenAI's bound).</summary>
    public const int MaxInputs = 2048;

    private const int InputsInFlight = 32;

    public async Task HandleAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        using var doc = await RequestBody.ReadAsync(ctx.Request, ct);
        var f = new JsonFields(doc.RootElement);
        var caller = Security.AuthenticationMiddleware.CallerOf(ctx);
        var (adapters, routing, modelName) = ModelResolver.ReadTarget(f, stage, caller);
        if (stage.Model.Pooling is { } pooling and not "lasttoken")
            throw ApiException.BadRequest($"this model pools by '{pooling}' (its sentence-transformers Pooling module); only last-token pooling is served", "model");
        string format = f.String("encoding_format") ?? "float";
        if (format is not ("float" or "base64"))
            throw JsonFields.Bad("encoding_format", $"must be float or base64, got '{format}'");
        int hidden = stage.Model.HiddenSize;
        int? dimensions = f.Has("dimensions") ? f.Int("dimensions", 1, hidden) : null;
        bool normalize = f.Bool("normalize") ?? true;
        bool addSpecialTokens = f.Bool("add_special_tokens") ?? true;
        var truncation = PromptTruncation.Read(f, stage.MaxContext, 1);
        var inputs = CompletionPromptReader.Read(f, text => stage.TokenizePrompt(text, addSpecialTokens, "input", truncation), "input", MaxInputs);
        if (truncation is not null)
            inputs = [.. inputs.Select(truncation.Apply)];
        if (inputs.Select((p, i) => (p, i)).FirstOrDefault(x => x.p.Count == 0) is { p: not null } empty)
            throw JsonFields.Bad("input", $"input {empty.i} has no tokens: there is nothing to embed");

        var sampling = new SamplingParams { Temperature = 0, MaxTokens = 1, IgnoreEos = true, EmbedPrompt = true };
        var requests = await stage.PrepareAsync(inputs, sampling, adapters, routing, caller, null, ct, GenerationRequestStage.ReadCacheSalt(f),
            priority: stage.CheckPriority(f.Int("priority", int.MinValue, int.MaxValue), caller), promptField: "input");
        var vectors = new float[requests.Count][];
        await Parallel.ForEachAsync(Enumerable.Range(0, requests.Count), new ParallelOptions { MaxDegreeOfParallelism = InputsInFlight, CancellationToken = ct },
            async (i, token) =>
            {
                await foreach (var e in client.SubmitAsync(requests[i], token))
                    if (e.Embedding is { } embedding)
                        vectors[i] = Shape(embedding, dimensions, normalize);
                _ = vectors[i] ?? throw new InvalidOperationException($"input {i} finished without its embedding");
            });

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

    /// <summary>The first <paramref name="dimensions"/> of <paramref name="hidden"/> (all of it when null), L2-normalised when asked.</summary>
    internal static float[] Shape(IReadOnlyList<float> hidden, int? dimensions, bool normalize)
    {
        var vector = hidden.Take(dimensions ?? hidden.Count).ToArray();
        if (normalize)
        {
            double norm = Math.Sqrt(vector.Sum(v => (double)v * v));
            if (norm > 0)
                for (int i = 0; i < vector.Length; i++)
                    vector[i] = (float)(vector[i] / norm);
        }

        return vector;
    }
}
