using System.Text.Json;
using Serving.AdapterStore;
using Serving.Contracts;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;
using Serving.Server.Api;
using Serving.Server.Hosting;
using Serving.Server.Security;

namespace Serving.Server.Requests;

internal static class ModelResolver
{
    /// <summary>
    /// <c>model</c> names the base model or an adapter (which then runs at weight 1); the <c>adapters</c> extension
    /// (<c>[{"id", "weight"}]</c>) mixes several adapters over the base model. Unknown names are 404.
    /// </summary>
    public static PinnedAdapters Resolve(JsonFields f, ModelHost host, Caller caller) =>
        Resolve(f.String("model") ?? throw JsonFields.Bad("model", "is required"), ReadMix(f), host, caller);

    /// <summary>
    /// The REST body's target: <c>model: "auto"</c> with its routing options (the <c>adapters</c> mix is then refused), or
    /// the model and adapters resolved once through the request stage.
    /// </summary>
    public static RequestTarget ReadTarget(JsonFields f, GenerationRequestStage stage, Caller caller)
    {
        bool auto = IsAuto(f);
        var adapters = auto ? null : Resolve(f, stage, caller);
        var routing = auto ? ReadRouting(f) : null;
        return new RequestTarget(adapters, routing, f.String("model")!);
    }

    /// <summary>The same through the request stage.</summary>
    public static PinnedAdapters Resolve(JsonFields f, GenerationRequestStage stage, Caller caller) =>
        stage.Resolve(f.String("model") ?? throw JsonFields.Bad("model", "is required"), ReadMix(f), caller);

    /// <summary>The same rules for callers that already hold the fields (gRPC): <paramref name="mix"/> as (id, weight) pairs.</summary>
    /// <remarks>
    /// An adapter of another tenant is 403 (the caller may use shared adapters and its own). The only place a request's
    /// adapter names are resolved: the result pins their versions for the request's whole life.
    /// </remarks>
    public static PinnedAdapters Resolve(string model, IReadOnlyList<(string Id, double Weight)> mix, ModelHost host, Caller caller)
    {
        if (string.IsNullOrEmpty(model))
            throw JsonFields.Bad("model", "is required");
        var adapters = CreateMix(mix, host, caller);
        if (host.ModelNames.Contains(model, StringComparer.Ordinal))
            return adapters;
        if (!adapters.Mix.IsBaseModel)
            throw JsonFields.Bad("adapters", "can only be combined with the base model as 'model'");
        if (AdapterId.TryParse(model, out var id, out _) && host.Adapters.Resolve(id) is { } record)
            return caller.CanUse(record) ? new PinnedAdapters(AdapterMix.Single(id), [record]) : throw Forbidden(model, "model");
        if (AdapterId.TryParse(model, out id, out _) && BeingPrepared(host, id, "model") is { } preparing)
            throw preparing;
        throw new ApiException(404, $"The model '{model}' does not exist. Available: '{host.ModelId}' and the adapters listed by /v1/models.", "model");
    }

    private static List<(string Id, double Weight)> ReadMix(JsonFields f)
    {
        var entries = new List<(string, double)>();
        if (f.Get("adapters") is not { } list)
            return entries;
        if (list.ValueKind != JsonValueKind.Array)
            throw JsonFields.Bad("adapters", "must be a list of {\"id\", \"weight\"} objects");
        foreach (var e in list.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Object)
                throw JsonFields.Bad("adapters", "must be a list of {\"id\", \"weight\"} objects");
            var ef = new JsonFields(e);
            entries.Add((ef.String("id") ?? throw JsonFields.Bad("adapters", "entries need an 'id'"), ef.Double("weight", double.MinValue, double.MaxValue) ?? 1.0));
        }

        return entries;
    }

    /// <summary>503 with Retry-After for an adapter the server announced and is still making (a demo adapter in training); else null.</summary>
    private static ApiException? BeingPrepared(ModelHost host, AdapterId id, string param)
    {
        if (!host.Preparing.IsPreparing(id, out var wait))
            return null;
        int seconds = (int)Math.Ceiling(wait.TotalSeconds);
        return new ApiException(503, $"The adapter '{id.Value}' is being prepared (trained after start-up) and is not ready yet; retry in about {seconds} s.", param)
        {
            RetryAfterSeconds = seconds,
        };
    }

    private static ApiException Forbidden(string adapter, string param) =>
        new(403, $"The adapter '{adapter}' belongs to another tenant.", param);

    private static PinnedAdapters CreateMix(IReadOnlyList<(string Id, double Weight)> mix, ModelHost host, Caller caller)
    {
        var entries = new List<(AdapterId, float)>();
        var records = new List<Serving.AdapterStore.Registry.AdapterRecord>();
        foreach (var (text, weight) in mix)
        {
            if (!AdapterId.TryParse(text, out var id, out string? error))
                throw JsonFields.Bad("adapters", error!);
            var record = host.Adapters?.Resolve(id) ?? throw BeingPrepared(host, id, "adapters") ?? new ApiException(404, $"The adapter '{text}' does not exist.", "adapters");
            if (!caller.CanUse(record))
                throw Forbidden(text, "adapters");
            if (!double.IsFinite(weight) || weight <= 0 || weight > 100)
                throw JsonFields.Bad("adapters", $"weight {weight} for '{text}' must be finite, positive and at most 100");
            entries.Add((id, (float)weight));
            records.Add(record);
        }

        try
        {
            return new PinnedAdapters(AdapterMix.Create(entries), records);
        }
        catch (ArgumentException ex)
        {
            throw JsonFields.Bad("adapters", ex.Message);
        }
    }

    /// <summary><c>model: "auto"</c>: the server routes. The <c>adapters</c> mix is then refused.</summary>
    public static bool IsAuto(JsonFields f)
    {
        if (!GenerationRequestStage.IsAuto(f.String("model")))
            return false;
        if (f.Has("adapters"))
            throw JsonFields.Bad("adapters", "cannot be combined with model 'auto' (name candidates in routing.candidates)");
        return true;
    }

    /// <summary>The optional <c>routing</c> object of an auto request: <c>{"candidates": [...], "top_k": k, "temperature": t, "method": "arrow"|"centroid"}</c>.</summary>
    public static RoutingRequest ReadRouting(JsonFields f)
    {
        if (f.Get("routing") is not { } routing)
            return new RoutingRequest(null, null, null, null);
        if (routing.ValueKind != JsonValueKind.Object)
            throw JsonFields.Bad("routing", "must be an object {candidates, top_k, temperature}");
        var r = new JsonFields(routing);
        return new RoutingRequest(r.Has("candidates") ? r.StringOrList("candidates", 1024) : null, r.Int("top_k", 1, AdapterMix.MaxAdapters),
            r.Double("temperature", 1e-6, 1e6), r.String("method"));
    }

    /// <summary>The adapters a request ran with, for responses: <c>[{"id", "weight"}]</c>.</summary>
    public static System.Text.Json.Nodes.JsonArray Describe(PinnedAdapters adapters) => Describe(adapters.Mix);

    /// <summary>The adapters of a mix, for responses: <c>[{"id", "weight"}]</c>.</summary>
    public static System.Text.Json.Nodes.JsonArray Describe(AdapterMix mix) =>
        new(mix.Entries.Select(e => (System.Text.Json.Nodes.JsonNode)new System.Text.Json.Nodes.JsonObject { ["id"] = e.Id.Value, ["weight"] = e.Weight }).ToArray());
}
