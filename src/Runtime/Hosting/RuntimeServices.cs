using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Serving.AdapterStore;
using Serving.Batching;
using Serving.Runtime.Generation;
using Serving.Runtime.Routing;

namespace Serving.Runtime.Hosting;

/// <summary>
/// The runtime's services, options and hosted services, bound from configuration and validated at start-up: what runs the
/// model for requests, with no protocol. The server adds its front doors on top; tests and tools host the runtime alone.
/// </summary>
public static class RuntimeServices
{
    /// <summary>The options classes the runtime binds and their sections (the server's option catalogue reads them).</summary>
    public static readonly IReadOnlyList<(string Section, Type Type)> OptionSections =
    [
        (ModelOptions.Section, typeof(ModelOptions)),
        (AdapterStoreOptions.Section, typeof(AdapterStoreOptions)),
        (BatchingOptions.Section, typeof(BatchingOptions)),
        (RoutingOptions.Section, typeof(RoutingOptions)),
        (Speculation.SpeculationOptions.Section, typeof(Speculation.SpeculationOptions)),
    ];

    /// <summary>
    /// Process-wide native settings (oneDNN's primitive cache, glibc's arenas) that must be in place before libtorch
    /// first runs a kernel: call it first thing in <c>Main</c>.
    /// </summary>
    public static void ApplyNativeDefaults() => Serving.Engine.Runtime.NativeRuntimeDefaults.Apply();

    public static IServiceCollection AddServingRuntime(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<ModelOptions>().Bind(configuration.GetSection(ModelOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ModelOptions>, ModelOptionsValidator>();
        services.AddOptions<AdapterStoreOptions>().Bind(configuration.GetSection(AdapterStoreOptions.Section))
            .Validate(o => o.MaxDeviceSlots is >= 1 and <= 1024, "Serving:Adapters:MaxDeviceSlots must be in [1, 1024]")
            .Validate(o => o.MaxRank is >= 1 and <= 1024, "Serving:Adapters:MaxRank must be in [1, 1024]")
            .Validate(o => o.MaxPerTenant >= 0, "Serving:Adapters:MaxPerTenant must be ≥ 0 (0: no limit)")
            .Validate(o => o.MaxExpertSlotMiB >= 0, "Serving:Adapters:MaxExpertSlotMiB must be ≥ 0 (0: expert adapters refused)")
            .Validate(o => string.IsNullOrEmpty(o.Path) || Directory.Exists(o.Path), "Serving:Adapters:Path must be an existing folder")
            .Validate(o => string.IsNullOrEmpty(o.SyncFrom) || AdapterStore.Sources.S3AdapterSource.TryParse(o.SyncFrom, out _),
                "Serving:Adapters:SyncFrom must be an s3://bucket/prefix URI")
            .Validate(o => o.MaxAdapterBytes >= 1 && o.MaxAdapterBytes <= Array.MaxLength, $"Serving:Adapters:MaxAdapterBytes must be in [1, {Array.MaxLength}]")
            .Validate(o => o.MaxReadSeconds is >= 0.1 and <= 3_600, "Serving:Adapters:MaxReadSeconds must be in [0.1, 3600]")
            .Validate(o => o.SyncIntervalSeconds is >= 1 and <= 86_400, "Serving:Adapters:SyncIntervalSeconds must be in [1, 86400]")
            .Validate(o => o.S3.BreakSeconds is >= 0.5 and <= 3_600, "Serving:Adapters:S3:BreakSeconds must be in [0.5, 3600]")
            .Validate(o => o.S3.ResponseTimeoutSeconds is >= 0.05 and <= 600, "Serving:Adapters:S3:ResponseTimeoutSeconds must be in [0.05, 600]")
            .Validate(o => o.S3.ReadIdleTimeoutSeconds is >= 0.05 and <= 600, "Serving:Adapters:S3:ReadIdleTimeoutSeconds must be in [0.05, 600]")
            .ValidateOnStart();
        services.AddOptions<BatchingOptions>().Bind(configuration.GetSection(BatchingOptions.Section))
            .Validate(o => !o.Validate().Any(), "invalid Serving:Batching settings")
            .Validate<IOptions<ModelOptions>>((o, m) => o.KvCacheTokens == 0 || o.KvCacheTokens >= m.Value.MaxContext,
                "Serving:Batching:KvCacheTokens must hold at least one sequence of Serving:Model:MaxContext tokens")
            .ValidateOnStart();
        services.AddOptions<RoutingOptions>().Bind(configuration.GetSection(RoutingOptions.Section))
            .Validate(o => !o.Validate().Any(), "invalid Serving:Routing settings").ValidateOnStart();
        services.AddOptions<Speculation.SpeculationOptions>().Bind(configuration.GetSection(Speculation.SpeculationOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<Speculation.SpeculationOptions>, Speculation.SpeculationOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.AddSingleton<Observability.ServingMetrics>();
        // Order matters: hosted services start in registration order, so the model is loaded before the engine loop starts.
        services.AddSingleton<ModelHost>();
        services.AddHostedService(sp => sp.GetRequiredService<ModelHost>());
        services.AddSingleton<EngineWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<EngineWorker>());
        services.AddSingleton<RequestSeeds>();
        services.AddSingleton<GenerationClient>();
        services.AddSingleton<NativeHeapTrimmer>();
        services.AddHostedService(sp => sp.GetRequiredService<NativeHeapTrimmer>());
        services.AddSingleton<AdapterRouter>();
        services.AddSingleton<AdapterSyncService>();
        services.AddHostedService(sp => sp.GetRequiredService<AdapterSyncService>());
        return services;
    }
}
