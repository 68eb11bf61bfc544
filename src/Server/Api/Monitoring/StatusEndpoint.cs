using System.Text.Json.Nodes;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;
using Serving.Runtime.Observability;
using Serving.Server.Security;

namespace Serving.Server.Api.Monitoring;

/// <summary>
/// <c>GET /v1/status</c>: what the console's live view and adapter table show, as one JSON object read every second —
/// request counts, KV cache use, tokens generated so far (rates are differences of it), the adapter tiers' counters,
/// and every adapter the caller may use with its shape, tier and running/waiting requests. Like <c>/v1/models</c>, a
/// caller sees only shared adapters and its tenant's; the Prometheus endpoint stays the place for every tenant's figures.
/// </summary>
internal sealed class StatusEndpoint(ModelHost host, EngineWorker worker, ServingMetrics metrics, TimeProvider time)
{
    public IResult Handle(Caller caller)
    {
        metrics.Refresh();
        var activity = worker.AdapterActivity;
        var adapters = new JsonArray();
        foreach (var id in host.Adapters.List())
        {
            if (host.Adapters.Resolve(id) is not { } record || !caller.CanUse(record))
                continue;
            var details = host.Lifecycle.Describe(record);
            var counts = activity.GetValueOrDefault(id);
            adapters.Add(new JsonObject
            {
                ["id"] = id.Value,
                ["version"] = record.Version,
                ["owner"] = record.Tenant ?? "shared",
                ["rank"] = details?.Rank,
                ["target_modules"] = details is null ? null : new JsonArray([.. details.TargetModules.Select(t => JsonValue.Create(t))]),
                ["size_bytes"] = details?.SizeBytes,
                ["tier"] = worker.TierOf(record),
                ["running"] = counts.Running,
                ["waiting"] = counts.Waiting,
                ["pinned"] = counts.Pins,
            });
        }

        var tiers = new JsonObject();
        foreach (var m in metrics.TierCounts)
        {
            string tier = (string)m.Tags[0].Value!, result = (string)m.Tags[1].Value!;
            tiers[$"{tier}_{(result == "miss" ? "misses" : result + "s")}"] = m.Value;
        }

        var (blockSize, blocks) = metrics.CacheConfig;
        return Results.Json(new JsonObject
        {
            ["object"] = "status",
            ["model"] = host.ModelId,
            ["caller"] = new JsonObject { ["role"] = caller.Role.ToString().ToLowerInvariant(), ["tenant"] = caller.Tenant.Length == 0 ? null : caller.Tenant },
            ["time"] = time.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0,
            ["uptime_seconds"] = Math.Round((time.GetUtcNow() - host.LoadedAt).TotalSeconds, 1),
            ["generated_tokens_total"] = metrics.GeneratedTokensTotal,
            ["requests"] = new JsonObject { ["running"] = metrics.Running, ["waiting"] = metrics.Waiting },
            ["kv_cache"] = new JsonObject { ["usage"] = Math.Round(metrics.KvUsage, 4), ["blocks"] = blocks, ["block_size"] = blockSize },
            ["adapter_cache"] = tiers,
            ["adapters"] = adapters,
            // Only the server's own (shared) default adapters are ever prepared, so every caller may see them.
            ["preparing"] = new JsonArray([.. host.Preparing.Pending.Select(id => JsonValue.Create(id.Value))]),
        });
    }
}
