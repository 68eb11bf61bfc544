using Microsoft.Extensions.Diagnostics.HealthChecks;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;
using Serving.Server.Hosting;

namespace Serving.Server.Api.Grpc;

/// <summary>The standard gRPC health service's answer: serving once the model is loaded and the engine loop runs (as <c>/readyz</c>).</summary>
internal sealed class EngineReadinessCheck(ModelHost host, EngineWorker worker, AdapterSyncService sync) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(host.IsLoaded && worker.IsRunning && sync.FirstPassDone
            ? HealthCheckResult.Healthy("model loaded, engine running")
            : host.IsLoaded && worker.IsRunning ? HealthCheckResult.Unhealthy("syncing the adapter store")
            : HealthCheckResult.Unhealthy(host.IsLoaded ? "engine not running" : "model not loaded"));
}
