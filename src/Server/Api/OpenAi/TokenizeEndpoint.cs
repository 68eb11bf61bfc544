using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Serving.Runtime.Hosting;
using Serving.Server.Api;
using Serving.Server.Hosting;
using Serving.Server.Requests;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// vLLM's <c>POST /tokenize</c> (a <c>prompt</c>, or chat <c>messages</c> rendered by the model's template) and
/// <c>POST /detokenize</c>: the ids the server would run, so users can check what it sees. <c>model</c> is checked like a
/// generation request's (an adapter shares the base model's tokenizer).
/// </summary>
internal sealed class TokenizeEndpoint(ModelHost host, IOptions<ModelOptions> options, TimeProvider time)
{
    public async Task TokenizeAsync(HttpContext ctx)
    {
        using var doc = await RequestBody.ReadAsync(ctx.Request, ctx.RequestAborted);
        var f = new JsonFields(doc.RootElement);
        CheckModel(f, ctx);
        var model = host.Served;
        bool chat = f.Has("messages");
        if (chat == f.Has("prompt"))
            throw JsonFields.Bad("prompt", "give either 'prompt' or 'messages'");
        string text = chat ? ChatPromptReader.Render(f, model, time.GetLocalNow(), Tools.ToolChoice.Read(f))
            : f.String("prompt") ?? throw JsonFields.Bad("prompt", "must be a string");
        int[] ids;
        try
        {
            // A chat prompt carries its special tokens as text already (vLLM's default for messages is false too).
            ids = model.Encode(text, f.Bool("add_special_tokens") ?? !chat);
        }
        catch (PromptTextException ex)
        {
            throw JsonFields.Bad(chat ? "messages" : "prompt", ex.Message);
        }

        var body = new JsonObject
        {
            ["count"] = ids.Length,
            ["max_model_len"] = Math.Min(options.Value.MaxContext, model.MaxPositions),
            ["tokens"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()),
        };
        if (f.Bool("return_token_strs") == true)
            body["token_strs"] = new JsonArray(ids.Select(i => (JsonNode?)model.TokenString(i)).ToArray());
        await Results.Json(body).ExecuteAsync(ctx);
    }

    public async Task DetokenizeAsync(HttpContext ctx)
    {
        using var doc = await RequestBody.ReadAsync(ctx.Request, ctx.RequestAborted);
        var f = new JsonFields(doc.RootElement);
        CheckModel(f, ctx);
        if (f.Get("tokens") is not { ValueKind: JsonValueKind.Array } tokens)
            throw JsonFields.Bad("tokens", "must be a list of token ids");
        var model = host.Served;
        var ids = new List<int>(tokens.GetArrayLength());
        foreach (var t in tokens.EnumerateArray())
        {
            if (t.ValueKind != JsonValueKind.Number || !t.TryGetInt32(out int id) || model.TokenString(id) is null)
                throw JsonFields.Bad("tokens", $"{t.GetRawText()} is not a token id of this model's vocabulary");
            ids.Add(id);
        }

        await Results.Json(new JsonObject { ["prompt"] = model.Decode(ids, skipSpecialTokens: false) }).ExecuteAsync(ctx);
    }

    private void CheckModel(JsonFields f, HttpContext ctx)
    {
        if (!GenerationRequestStage.IsAuto(f.String("model")))
            ModelResolver.Resolve(f, host, Security.AuthenticationMiddleware.CallerOf(ctx));
    }
}
