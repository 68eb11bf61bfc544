using System.Text.Json;
using Serving.AdapterStore;
using Serving.Batching;
using Serving.Server.Hosting;

namespace Serving.Server.OpenAi;

internal static class ModelResolver
{
    /// <summary>
    /// <c>model</c> names the base model or an adapter (which then runs at weight 1); the <c>adapters</c> extension
    /// (<c>[{"id", "weight"}]</c>) mixes several adapters over the base model. Unknown names are 404.
    /// </summary>
    public static AdapterMix Resolve(JsonFields f, ModelHost host)
    {
        string model = f.String("model") ?? throw JsonFields.Bad("model", "is required");
        var mix = ReadMix(f, host);
        if (model == host.ModelId)
            return mix;
        if (!mix.IsBaseModel)
            throw JsonFields.Bad("adapters", "can only be combined with the base model as 'model'");
        if (AdapterId.TryParse(model, out var id, out _) && host.Adapters.Resolve(id) is not null)
            return AdapterMix.Single(id);
        throw new ApiException(404, $"The model '{model}' does not exist. Available: '{host.ModelId}' and the adapters listed by /v1/models.", "model");
    }

    private static AdapterMix ReadMix(JsonFields f, ModelHost host)
    {
        if (f.Get("adapters") is not { } list)
            return AdapterMix.None;
        if (list.ValueKind != JsonValueKind.Array)
            throw JsonFields.Bad("adapters", "must be a list of {\"id\", \"weight\"} objects");
        var entries = new List<(AdapterId, float)>();
        foreach (var e in list.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Object)
                throw JsonFields.Bad("adapters", "must be a list of {\"id\", \"weight\"} objects");
            var ef = new JsonFields(e);
            string text = ef.String("id") ?? throw JsonFields.Bad("adapters", "entries need an 'id'");
            if (!AdapterId.TryParse(text, out var id, out string? error))
                throw JsonFields.Bad("adapters", error!);
            if (host.Adapters?.Resolve(id) is null)
                throw new ApiException(404, $"The adapter '{text}' does not exist.", "adapters");
            entries.Add((id, (float)(ef.Double("weight", -100, 100) ?? 1.0)));
        }

        try
        {
            return AdapterMix.Create(entries);
        }
        catch (ArgumentException ex)
        {
            throw JsonFields.Bad("adapters", ex.Message);
        }
    }
}
