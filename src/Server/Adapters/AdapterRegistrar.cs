using Microsoft.Extensions.Options;
using Serving.AdapterStore;
using Serving.AdapterStore.Files;
using Serving.AdapterStore.Peft;
using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Sources;
using Serving.Contracts;
using Serving.Runtime.Hosting;
using Serving.Server.Hosting;
using Serving.Server.OpenAi;
using Serving.Server.Security;

namespace Serving.Server.Adapters;

/// <summary>
/// Registers, replaces (hot swap) and removes run-time adapters for every protocol: fetches the files from their source
/// (through <see cref="AdapterFileReader"/>, confined to a user's allowed folders after every link is resolved), validates
/// them against the base model, then records the version in the registry. Running requests keep the version they started
/// with; new requests get the new one. Errors are <see cref="ApiException"/>s naming the request fields as the calling
/// protocol names them.
/// </summary>
internal sealed class AdapterRegistrar(ModelHost host, IOptions<AdapterStoreOptions> options, TimeProvider time, Serving.Runtime.Routing.AdapterRouter router,
    IHostApplicationLifetime lifetime)
{
    /// <returns>The new record and the one it replaced, if any.</returns>
    /// <remarks>
    /// A user registers adapters owned by its tenant, only from its allowed source prefixes, and may replace only its own;
    /// an admin registers shared adapters (or one for <paramref name="tenant"/>).
    /// </remarks>
    public async Task<(AdapterRecord Record, AdapterRecord? Previous)> RegisterAsync(Caller caller, string? name, string? path, string nameField, string pathField,
        CancellationToken ct, string? tenant = null)
    {
        var id = ParseNewName(name, nameField);
        if (string.IsNullOrEmpty(path))
            throw JsonFields.Bad(pathField, "is required");
        if (LocalAdapterPath.HasInvalidCharacter(path))
            throw JsonFields.Bad(pathField, "contains a NUL or another control character, which no adapter path has");
        if (!caller.MayReadFrom(path))
            throw new ApiException(403, $"'{path}' is outside the sources this key may register adapters from", pathField);
        if (tenant is not null && !caller.IsAdmin)
            throw new ApiException(403, "only admins register adapters for a tenant", "tenant");
        if (host.Adapters.Resolve(id) is { } existing && !caller.CanManage(existing))
            throw new ApiException(403, $"The adapter '{id}' belongs to {(existing.Tenant is null ? "the shared space (admins only)" : "another tenant")}.", nameField);
        var source = host.Sources.For(path)
            ?? throw JsonFields.Bad(pathField, $"'{path}' uses a URI scheme this server has no source for (local folders and s3://)");
        var a = options.Value;
        var policy = caller.IsAdmin
            ? AdapterReadPolicy.Trusted(a.MaxAdapterBytes, a.ReadTimeout)
            : AdapterReadPolicy.ConfinedTo(caller.AllowedSources, a.MaxAdapterBytes, a.ReadTimeout);
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(ct, lifetime.ApplicationStopping);
        var files = await FetchAsync(source, path, id, policy, caller, pathField, stopping.Token);
        string shape;
        try
        {
            shape = AdapterShape.Of(PeftAdapterReader.Read(files, id.Value, host.Model.Config, a.MaxRank));
        }
        catch (AdapterFormatException ex)
        {
            throw new ApiException(422, ex.Message, pathField);
        }

        var record = new AdapterRecord(id, source is LocalPathAdapterSource ? files.Folder : path, files.Version, time.GetUtcNow(),
            caller.IsAdmin ? tenant : caller.Tenant, shape);
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

    /// <summary>An adapter name as clients send it (lookups, removal).</summary>
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

    /// <summary>
    /// A name to register: also not reserved (<c>auto</c>, the base model's id, in any letter case) and not an existing
    /// adapter's name in another letter case (which would route or bill differently on case-insensitive gateways).
    /// </summary>
    public AdapterId ParseNewName(string? name, string field)
    {
        var id = ParseName(name, field);
        if (string.Equals(id.Value, Serving.Runtime.Routing.AdapterRouter.AutoModel, StringComparison.OrdinalIgnoreCase))
            throw JsonFields.Bad(field, $"'{id}' is reserved: model \"{Serving.Runtime.Routing.AdapterRouter.AutoModel}\" asks the server to route (names are compared ignoring case)");
        if (string.Equals(id.Value, host.ModelId, StringComparison.OrdinalIgnoreCase))
            throw JsonFields.Bad(field, $"'{id}' is the base model's id '{host.ModelId}' in another letter case (names are compared ignoring case)");
        if (host.Adapters.List().FirstOrDefault(other => other != id && string.Equals(other.Value, id.Value, StringComparison.OrdinalIgnoreCase)) is { Value: not null } clash)
            throw JsonFields.Bad(field, $"'{id}' differs from the existing adapter '{clash}' only in letter case (names are compared ignoring case)");
        return id;
    }

    private static async Task<AdapterFiles> FetchAsync(IAdapterSource source, string uri, AdapterId id, AdapterReadPolicy policy, Caller caller, string field,
        CancellationToken ct)
    {
        try
        {
            return await source.FetchAsync(uri, id.Value, policy, ct);
        }
        catch (ArgumentException ex)
        {
            throw JsonFields.Bad(field, ex.Message);
        }
        catch (AdapterFileException ex) when (ex.Problem == AdapterFileProblem.NotFound)
        {
            // One answer for missing and for outside the caller's folders once links are resolved: probing reveals nothing.
            throw new ApiException(404, ex.File is not null ? $"adapter folder '{uri}' has no {ex.File}"
                : caller.IsAdmin ? $"adapter folder '{uri}' does not exist"
                : $"adapter folder '{uri}' does not exist or is outside the sources this key may register adapters from", field);
        }
        catch (AdapterFileException ex) when (ex.Problem == AdapterFileProblem.TimedOut)
        {
            throw new ApiException(503, $"adapter folder '{uri}': {ex.File} {ex.Message}", field);
        }
        catch (AdapterFileException ex)
        {
            throw new ApiException(422, $"adapter folder '{uri}': {ex.File ?? "the folder"} {ex.Message}", field);
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
