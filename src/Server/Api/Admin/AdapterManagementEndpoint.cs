using Serving.Server.Api;

namespace Serving.Server.Api.Admin;

/// <summary>
/// vLLM-compatible adapter management: <c>POST /v1/load_lora_adapter</c> registers or replaces (hot swap) an adapter
/// after validating it against the base model; <c>POST /v1/unload_lora_adapter</c> removes a registration. Running
/// requests keep the version they started with (their device slot stays pinned); new requests get the new one.
/// </summary>
internal sealed class AdapterManagementEndpoint(AdapterRegistrar registrar)
{
    public async Task LoadAsync(HttpContext ctx)
    {
        using var doc = await RequestBody.ReadAsync(ctx.Request, ctx.RequestAborted);
        var f = new JsonFields(doc.RootElement);
        var (record, previous) = await registrar.RegisterAsync(Security.AuthenticationMiddleware.CallerOf(ctx), f.String("lora_name"), f.String("lora_path"),
            "lora_name", "lora_path", ctx.RequestAborted, f.String("tenant"));
        await Results.Text(previous is null
            ? $"Success: LoRA adapter '{record.Id}' added successfully."
            : $"Success: LoRA adapter '{record.Id}' replaced (version {previous.Version} → {record.Version}).").ExecuteAsync(ctx);
    }

    public async Task UnloadAsync(HttpContext ctx)
    {
        using var doc = await RequestBody.ReadAsync(ctx.Request, ctx.RequestAborted);
        var record = registrar.Unregister(Security.AuthenticationMiddleware.CallerOf(ctx), new JsonFields(doc.RootElement).String("lora_name"), "lora_name");
        await Results.Text($"Success: LoRA adapter '{record.Id}' removed successfully.").ExecuteAsync(ctx);
    }
}
