using Microsoft.Extensions.Options;
using Serving.AdapterStore;
using Serving.AdapterStore.Peft;
using Serving.AdapterStore.Registry;
using Serving.Server.Hosting;

namespace Serving.Server.OpenAi;

/// <summary>
/// vLLM-compatible adapter management: <c>POST /v1/load_lora_adapter</c> registers or replaces (hot swap) an adapter
/// after validating it against the base model; <c>POST /v1/unload_lora_adapter</c> removes a registration. Running
/// requests keep the version they started with (their device slot stays pinned); new requests get the new one.
/// </summary>
internal sealed class AdapterManagementEndpoint(ModelHost host, IOptions<AdapterStoreOptions> options, TimeProvider time)
{
    public async Task LoadAsync(HttpContext ctx)
    {
        using var doc = await RequestBody.ReadAsync(ctx.Request, ctx.RequestAborted);
        var f = new JsonFields(doc.RootElement);
        var id = ReadName(f);
        string path = f.String("lora_path") ?? throw JsonFields.Bad("lora_path", "is required");
        if (path.Contains("://", StringComparison.Ordinal))
            throw JsonFields.Bad("lora_path", $"source '{path}' uses a URI scheme this server has no source for yet (local folders only)");
        string folder = Path.GetFullPath(path);
        if (!Directory.Exists(folder))
            throw new ApiException(404, $"adapter folder '{path}' does not exist", "lora_path");
        var weightsFile = new FileInfo(Path.Combine(folder, PeftAdapterReader.WeightsFile));
        if (weightsFile.Exists && weightsFile.Length > options.Value.MaxAdapterBytes)
            throw new ApiException(422, $"adapter '{id}': {PeftAdapterReader.WeightsFile} is {weightsFile.Length} bytes, above the limit of {options.Value.MaxAdapterBytes}", "lora_path");
        try
        {
            PeftAdapterReader.Read(folder, id.Value, host.Model.Config, options.Value.MaxRank);
        }
        catch (AdapterFormatException ex)
        {
            throw new ApiException(422, ex.Message, "lora_path");
        }

        var previous = host.Adapters.Registry.Put(new AdapterRecord(id, folder, AdapterContentHash.Compute(folder), time.GetUtcNow()));
        await Results.Text(previous is null
            ? $"Success: LoRA adapter '{id}' added successfully."
            : $"Success: LoRA adapter '{id}' replaced (version {previous.Version} → {host.Adapters.Registry.Get(id)!.Version}).").ExecuteAsync(ctx);
    }

    public async Task UnloadAsync(HttpContext ctx)
    {
        using var doc = await RequestBody.ReadAsync(ctx.Request, ctx.RequestAborted);
        var id = ReadName(new JsonFields(doc.RootElement));
        if (!host.Adapters.Registry.Remove(id))
            throw new ApiException(404, $"The adapter '{id}' is not registered (adapters in the store folder are removed by deleting their folder).", "lora_name");
        await Results.Text($"Success: LoRA adapter '{id}' removed successfully.").ExecuteAsync(ctx);
    }

    private AdapterId ReadName(JsonFields f)
    {
        string name = f.String("lora_name") ?? throw JsonFields.Bad("lora_name", "is required");
        if (!AdapterId.TryParse(name, out var id, out string? error))
            throw JsonFields.Bad("lora_name", error!);
        if (name == host.ModelId)
            throw JsonFields.Bad("lora_name", "is the base model's id");
        return id;
    }
}
