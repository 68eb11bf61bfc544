using Microsoft.Extensions.Options;
using Serving.AdapterStore;
using Serving.AdapterStore.Peft;
using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Sources;
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
        var source = host.Sources.For(path)
            ?? throw JsonFields.Bad("lora_path", $"'{path}' uses a URI scheme this server has no source for (local folders and s3://)");
        var (folder, version) = await FetchAsync(source, path, id, ctx.RequestAborted);
        Validate(id, folder);
        string recorded = source is LocalPathAdapterSource ? folder : path;

        var previous = host.Adapters.Registry.Put(new AdapterRecord(id, recorded, version, time.GetUtcNow()));
        await Results.Text(previous is null
            ? $"Success: LoRA adapter '{id}' added successfully."
            : $"Success: LoRA adapter '{id}' replaced (version {previous.Version} → {version}).").ExecuteAsync(ctx);
    }

    private static async Task<(string Folder, string Version)> FetchAsync(IAdapterSource source, string uri, AdapterId id, CancellationToken ct)
    {
        try
        {
            return await source.FetchAsync(uri, id.Value, ct);
        }
        catch (ArgumentException ex)
        {
            throw JsonFields.Bad("lora_path", ex.Message);
        }
        catch (FileNotFoundException ex)
        {
            throw new ApiException(404, ex.Message, "lora_path");
        }
        catch (AdapterFormatException ex)
        {
            throw new ApiException(422, ex.Message, "lora_path");
        }
        catch (Exception ex) when (ex is Amazon.Runtime.AmazonServiceException or HttpRequestException or IOException or Polly.ExecutionRejectedException)
        {
            throw new ApiException(503, $"adapter source '{uri}' is unavailable: {ex.Message}", "lora_path");
        }
    }

    private void Validate(AdapterId id, string folder)
    {
        try
        {
            PeftAdapterReader.Read(folder, id.Value, host.Model.Config, options.Value.MaxRank, options.Value.MaxAdapterBytes);
        }
        catch (AdapterFormatException ex)
        {
            throw new ApiException(422, ex.Message, "lora_path");
        }
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
