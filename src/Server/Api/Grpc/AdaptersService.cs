using System.Globalization;
using Grpc.Core;
using Serving.AdapterStore.Registry;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;
using Serving.Server.Api.Admin;
using Serving.V1;

namespace Serving.Server.Api.Grpc;

/// <summary>
/// <c>serving.v1.Adapters</c>: list, get (version, rank, targets, size, tier), load/replace and unload. Registration goes
/// through the same <see cref="AdapterRegistrar"/> as <c>/v1/load_lora_adapter</c>.
/// </summary>
internal sealed class AdaptersService(ModelHost host, AdapterRegistrar registrar, EngineWorker worker) : V1.Adapters.AdaptersBase
{
    public override Task<ListAdaptersResponse> ListAdapters(ListAdaptersRequest request, ServerCallContext context)
    {
        var caller = Security.AuthenticationMiddleware.CallerOf(context.GetHttpContext());
        var response = new ListAdaptersResponse();
        foreach (var id in host.Adapters.List())
            if (host.Adapters.Resolve(id) is AdapterRecord record && caller.CanUse(record))
                response.Adapters.Add(Info(record, caller));
        return Task.FromResult(response);
    }

    public override Task<AdapterInfo> GetAdapter(GetAdapterRequest request, ServerCallContext context)
    {
        var id = registrar.ParseName(request.Id, "id");
        var record = host.Adapters.Resolve(id) ?? throw new ApiException(404, $"The adapter '{request.Id}' does not exist.", "id");
        var caller = Security.AuthenticationMiddleware.CallerOf(context.GetHttpContext());
        if (!caller.CanUse(record))
            throw new ApiException(403, $"The adapter '{request.Id}' belongs to another tenant.", "id");
        return Task.FromResult(Info(record, caller));
    }

    public override async Task<AdapterInfo> LoadAdapter(LoadAdapterRequest request, ServerCallContext context)
    {
        var caller = Security.AuthenticationMiddleware.CallerOf(context.GetHttpContext());
        var (record, _) = await registrar.RegisterAsync(caller, request.Id, request.Path, "id", "path",
            context.CancellationToken, string.IsNullOrEmpty(request.Tenant) ? null : request.Tenant);
        return Info(record, caller);
    }

    public override Task<UnloadAdapterResponse> UnloadAdapter(UnloadAdapterRequest request, ServerCallContext context)
    {
        var record = registrar.Unregister(Security.AuthenticationMiddleware.CallerOf(context.GetHttpContext()), request.Id, "id");
        return Task.FromResult(new UnloadAdapterResponse { Id = record.Id.Value, Version = record.Version });
    }

    /// <remarks>Users see where their own adapters come from, never the server's paths of shared or other adapters.</remarks>
    private AdapterInfo Info(AdapterRecord record, Security.Caller caller)
    {
        var info = new AdapterInfo
        {
            Id = record.Id.Value,
            Parent = host.ModelId,
            Source = caller.MaySeeSourceOf(record) ? record.Source : "",
            Version = record.Version,
            Tier = worker.TierOf(record),
            RegisteredAt = record.RegisteredAt.ToString("O", CultureInfo.InvariantCulture),
            Tenant = record.Tenant ?? "",
        };
        if (host.Lifecycle.Describe(record) is { } details)
        {
            info.Rank = details.Rank;
            info.LoraAlpha = (float)details.Alpha;
            info.TargetModules.AddRange(details.TargetModules);
            info.SizeBytes = details.SizeBytes;
        }

        return info;
    }
}
