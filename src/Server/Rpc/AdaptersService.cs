using System.Collections.Concurrent;
using System.Globalization;
using Grpc.Core;
using Serving.AdapterStore.Peft;
using Serving.AdapterStore.Registry;
using Serving.AdapterStore.Tiers;
using Serving.Contracts;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;
using Serving.Server.Adapters;
using Serving.Server.Hosting;
using Serving.Server.OpenAi;
using Serving.V1;

namespace Serving.Server.Rpc;

/// <summary>
/// <c>serving.v1.Adapters</c>: list, get (version, rank, targets, size, tier), load/replace and unload. Registration goes
/// through the same <see cref="AdapterRegistrar"/> as <c>/v1/load_lora_adapter</c>.
/// </summary>
internal sealed class AdaptersService(ModelHost host, AdapterRegistrar registrar, EngineWorker worker,
    Microsoft.Extensions.Options.IOptions<AdapterStore.AdapterStoreOptions> options) : V1.Adapters.AdaptersBase
{
    // adapter_config.json facts per version: versions are immutable, so each is read once.
    private readonly ConcurrentDictionary<AdapterVersionKey, (int Rank, double Alpha, string[] Targets, long Size)> _details = new();

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
        if (Details(record) is var (rank, alpha, targets, size))
        {
            info.Rank = rank;
            info.LoraAlpha = (float)alpha;
            info.TargetModules.AddRange(targets);
            info.SizeBytes = size;
        }

        return info;
    }

    /// <summary>From the version's local files; null while they are only at a remote source (nothing is downloaded for a status call).</summary>
    private (int, double, string[], long)? Details(AdapterRecord record)
    {
        var key = new AdapterVersionKey(record.Id, record.Version);
        if (_details.TryGetValue(key, out var known))
            return known;
        if (!host.Sources.IsOnDisk(record))
            return null;
        try
        {
            string folder = host.Sources.EnsureLocal(record);
            var policy = AdapterStore.AdapterCatalog.ReadPolicyFor(record, options.Value.MaxAdapterBytes, options.Value.ReadTimeout);
            byte[]? configBytes = AdapterStore.Files.AdapterFileReader.ReadOptional(folder, PeftLoraConfig.FileName, AdapterStore.Files.AdapterReadPolicy.MaxConfigBytes, policy, CancellationToken.None);
            if (configBytes is null)
                return null;
            var config = PeftLoraConfig.Parse(System.Text.Encoding.UTF8.GetString(configBytes), record.Id.Value);
            string[] targets = config.TargetModuleNames?.ToArray() ?? [config.TargetModuleRegex?.ToString() ?? ""];
            long size = AdapterStore.Files.AdapterFileReader.Status(folder, policy).Weights.Size;
            return _details[key] = (config.Rank, config.Alpha, targets, size);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or AdapterFormatException or AdapterStore.Files.AdapterFileException)
        {
            return null;                                   // files changed or vanished since registration: status stays partial
        }
    }
}
