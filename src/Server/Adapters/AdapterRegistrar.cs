using Microsoft.Extensions.Options;
using Serving.AdapterStore;
using Serving.AdapterStore.Peft;
using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Sources;
using Serving.Server.Hosting;
using Serving.Server.OpenAi;
using Serving.Server.Security;

namespace Serving.Server.Adapters;

/// <summary>
/// Registers, replaces (hot swap) and removes run-time adapters for every protocol: fetches the files from their source,
/// validates them against the base model, then records the version in the registry. Running requests keep the version
/// they started with; new requests get the new one. Errors are <see cref="ApiException"/>s naming
/// the request fields as the calling protocol names them.
/// </summary>
internal sealed class AdapterRegistrar(ModelHost host, IOptions<AdapterStoreOptions> options, TimeProvider time, Routing.AdapterRouter router)
{
    /// <returns>The new record and the one it replaced, if any.</returns>
    /// <remarks>
    /// A user registers adapters owned by its tenant, only from its allowed source prefixes, and may replace only its own;
    /// an admin registers shared adapters (or one for <paramref name="tenant"/>).
    /// </remarks>
    public async Task<(AdapterRecord Record, AdapterRecord? Previous)> RegisterAsync(Caller caller, string? name, string? path, string nameField, string pathField,
        CancellationToken ct, string? tenant = null)
    {
        var id = ParseName(name, nameField);
        if (string.IsNullOrEmpty(path))
            throw JsonFields.Bad(pathField, "is required");
        if (!caller.MayReadFrom(path))
            throw new ApiException(403, $"'{path}' is outside the sources this key may register adapters from", pathField);
        if (tenant is not null && !caller.IsAdmin)
            throw new ApiException(403, "only admins register adapters for a tenant", "tenant");
        if (host.Adapters.Resolve(id) is { } existing && !caller.CanManage(existing))
            throw new ApiException(403, $"The adapter '{id}' belongs to {(existing.Tenant is null ? "the shared space (admins only)" : "another tenant")}.", nameField);
        var source = host.Sources.For(path)
            ?? throw JsonFields.Bad(pathField, $"'{path}' uses a URI scheme this server has no source for (local folders and s3://)");
        var (folder, version) = await FetchAsync(source, path, id, pathField, ct);
        try
        {
            PeftAdapterReader.Read(folder, id.Value, host.Model.Config, options.Value.MaxRank, options.Value.MaxAdapterBytes);
        }
        catch (AdapterFormatException ex)
        {
            throw new ApiException(422, ex.Message, pathField);
        }

        var record = new AdapterRecord(id, source is LocalPathAdapterSource ? folder : path, version, time.GetUtcNow(),
            caller.IsAdmin ? tenant : caller.Tenant);
        var previous = host.Adapters.Registry.Put(record);
        _ = router.PrototypesAsync(record);                  // Arrow prototypes are stored with the version at registration
        return (record, previous);
    }

    /// <summary>Removes a run-time registration; returns the removed record.</summary>
    public AdapterRecord Unregister(Caller caller, string? name, string nameField)
    {
        var id = ParseName(name, nameField);
        var record = host.Adapters.Registry.Get(id);
        if (record is not null && !caller.CanManage(record))
            throw new ApiException(403, $"The adapter '{id}' belongs to {(record.Tenant is null ? "the shared space (admins only)" : "another tenant")}.", nameField);
        if (record is null || !host.Adapters.Registry.Remove(id))
            throw new ApiException(404, $"The adapter '{id}' is not registered (adapters in the store folder are removed by deleting their folder).", nameField);
        return record;
    }

    public AdapterId ParseName(string? name, string field)
    {
        if (string.IsNullOrEmpty(name))
            throw JsonFields.Bad(field, "is required");
        if (!AdapterId.TryParse(name, out var id, out string? error))
            throw JsonFields.Bad(field, error!);
        if (name == host.ModelId)
            throw JsonFields.Bad(field, "is the base model's id");
        return id;
    }

    private static async Task<(string Folder, string Version)> FetchAsync(IAdapterSource source, string uri, AdapterId id, string field, CancellationToken ct)
    {
        try
        {
            return await source.FetchAsync(uri, id.Value, ct);
        }
        catch (ArgumentException ex)
        {
            throw JsonFields.Bad(field, ex.Message);
        }
        catch (FileNotFoundException ex)
        {
            throw new ApiException(404, ex.Message, field);
        }
        catch (AdapterFormatException ex)
        {
            throw new ApiException(422, ex.Message, field);
        }
        catch (Exception ex) when (ex is Amazon.Runtime.AmazonServiceException or HttpRequestException or IOException or Polly.ExecutionRejectedException)
        {
            throw new ApiException(503, $"adapter source '{uri}' is unavailable: {ex.Message}", field);
        }
    }
}
