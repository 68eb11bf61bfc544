using Microsoft.Extensions.Options;
using Serving.AdapterStore;
using Serving.AdapterStore.Files;
using Serving.AdapterStore.Registry;
using Serving.Contracts;
using Serving.Runtime.Hosting;
using Serving.Server.Security;

namespace Serving.Server.Api.Admin;

/// <summary>
/// Registration, replacement (hot swap) and removal of run-time adapters for every protocol, as a caller may do them: the
/// caller's key decides what it may read and manage, the store's <see cref="AdapterLifecycle"/> does the rest. Errors are
/// <see cref="ApiException"/>s naming the request fields as the calling protocol names them.
/// </summary>
internal sealed class AdapterRegistrar(ModelHost host, IOptions<AdapterStoreOptions> options, Serving.Runtime.Routing.AdapterRouter router,
    Serving.Runtime.Generation.EngineWorker worker, IHostApplicationLifetime lifetime)
{
    /// <returns>The new record and the one it replaced, if any.</returns>
    /// <remarks>
    /// A user registers adapters owned by its tenant, only from its allowed source prefixes, and may replace only its own;
    /// an admin registers shared adapters (or one for <paramref name="tenant"/>).
    /// </remarks>
    public async Task<(AdapterRecord Record, AdapterRecord? Previous)> RegisterAsync(Caller caller, string? name, string? path, string nameField, string pathField,
        CancellationToken ct, string? tenant = null)
    {
        var lifecycle = host.Lifecycle;
        (AdapterRecord, AdapterRecord?) registered;
        try
        {
            var id = lifecycle.ParseNewName(name);
            AdapterLifecycle.CheckPath(path);
            if (!caller.MayReadFrom(path!))
                throw new ApiException(403, $"'{path}' is outside the sources this key may register adapters from", pathField);
            if (tenant is not null && !caller.IsAdmin)
                throw new ApiException(403, "only admins register adapters for a tenant", "tenant");
            if (host.Adapters.Resolve(id) is { } existing && !caller.CanManage(existing))
                throw Forbidden(id, existing, nameField);
            var a = options.Value;
            var policy = caller.IsAdmin
                ? AdapterReadPolicy.Trusted(a.MaxAdapterBytes, a.ReadTimeout)
                : AdapterReadPolicy.ConfinedTo(caller.AllowedSources, a.MaxAdapterBytes, a.ReadTimeout);
            using var stopping = CancellationTokenSource.CreateLinkedTokenSource(ct, lifetime.ApplicationStopping);
            // A user's registrations count against its tenant's limit; an admin's (shared, or for a tenant) do not.
            int? limit = caller.IsAdmin || a.MaxPerTenant == 0 ? null : a.MaxPerTenant;
            registered = await lifecycle.RegisterAsync(id, path!, policy, caller.IsAdmin ? tenant : caller.Tenant, stopping.Token, limit);
        }
        catch (AdapterStoreException ex)
        {
            throw ApiError(ex, nameField, pathField);
        }

        _ = router.WarmAsync(registered.Item1);        // Arrow prototypes are stored with the version at registration
        _ = worker.WarmAsync(registered.Item1);        // a DoRA version's norms are taken now, not at its first slot fill
        return registered;
    }

    /// <summary>Removes a run-time registration; returns the removed record.</summary>
    public AdapterRecord Unregister(Caller caller, string? name, string nameField)
    {
        try
        {
            var id = host.Lifecycle.ParseName(name);
            if (host.Adapters.Registry.Get(id) is { } record && !caller.CanManage(record))
                throw Forbidden(id, record, nameField);
            return host.Lifecycle.Unregister(id);
        }
        catch (AdapterStoreException ex)
        {
            throw ApiError(ex, nameField, nameField);
        }
    }

    /// <summary>An adapter name as clients send it (lookups, removal).</summary>
    public AdapterId ParseName(string? name, string field)
    {
        try
        {
            return host.Lifecycle.ParseName(name);
        }
        catch (AdapterStoreException ex)
        {
            throw ApiError(ex, field, field);
        }
    }

    /// <summary>The API error for the store's <paramref name="error"/>, naming the caller's field for its subject.</summary>
    public static ApiException ApiError(AdapterStoreException error, string nameField, string pathField)
    {
        string field = error.Subject == AdapterStoreSubject.Name ? nameField : pathField;
        return error.Failure switch
        {
            AdapterStoreFailure.BadRequest => JsonFields.Bad(field, error.Message),
            AdapterStoreFailure.NotFound => new ApiException(404, error.Message, field),
            AdapterStoreFailure.Unavailable => new ApiException(503, error.Message, field),
            AdapterStoreFailure.QuotaExceeded => new ApiException(429, error.Message, field),     // API.md: over a tenant's quota
            _ => new ApiException(422, error.Message, field),
        };
    }

    private static ApiException Forbidden(AdapterId id, AdapterRecord owner, string field) =>
        new(403, $"The adapter '{id}' belongs to {(owner.Tenant is null ? "the shared space (admins only)" : "another tenant")}.", field);
}
