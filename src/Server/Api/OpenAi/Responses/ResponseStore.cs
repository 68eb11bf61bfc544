using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Serving.Runtime.Observability;

namespace Serving.Server.Api.OpenAi.Responses;

/// <summary>
/// The Responses API's stored responses, in memory, per tenant. A response is found only under the tenant that made it:
/// another tenant's id reads exactly as one that never existed. Responses expire <see cref="ResponsesOptions.StoreMinutes"/>
/// after they were made; past <see cref="ResponsesOptions.StoreBytesPerTenant"/> a tenant's own oldest go, and past
/// <see cref="ResponsesOptions.StoreBytes"/> the oldest of whichever tenant holds the most — so a tenant can push out
/// another's responses only while it holds fewer bytes than that tenant. What each tenant holds is exported as
/// <c>serving_responses_stored</c> and <c>serving_responses_stored_bytes</c>.
/// </summary>
internal sealed class ResponseStore
{
    private readonly ResponsesOptions _options;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, LinkedListNode<StoredResponse>> _byId = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TenantResponses> _byTenant = new(StringComparer.Ordinal);

    public ResponseStore(IOptions<ResponsesOptions> options, TimeProvider time, ServingMetrics? metrics = null)
    {
        _options = options.Value;
        _time = time;
        metrics?.Meter.CreateObservableGauge("serving_responses_stored", () => PerTenant(t => t.Count),
            description: "Responses kept for previous_response_id (the Responses API), by tenant.");
        metrics?.Meter.CreateObservableGauge("serving_responses_stored_bytes", () => PerTenant(t => t.Bytes),
            description: "Bytes the kept responses count against Serving:Responses:StoreBytes, by tenant.");
    }

    public bool Enabled => _options.StoreBytes > 0;

    /// <summary>The most bytes one response may count and still be kept.</summary>
    public long MostBytesPerResponse => _options.StoreBytesPerTenant;

    public int Count
    {
        get
        {
            lock (_gate)
            {
                Expire();
                return _byId.Count;
            }
        }
    }

    public long Bytes
    {
        get
        {
            lock (_gate)
            {
                Expire();
                return _byTenant.Values.Sum(t => t.Bytes);
            }
        }
    }

    /// <summary>The response <paramref name="id"/> if <paramref name="tenant"/> stored it and it has not expired or been pushed out.</summary>
    public StoredResponse? Find(string tenant, string id)
    {
        lock (_gate)
        {
            Expire();
            return _byId.TryGetValue(id, out var node) && node.Value.Tenant == tenant ? node.Value : null;
        }
    }

    /// <summary>
    /// Keeps <paramref name="response"/>, then pushes out the oldest until both bounds hold; false when that pushed out
    /// <paramref name="response"/> itself (it alone is more than a tenant may hold, or its tenant holds the most).
    /// </summary>
    public bool Add(StoredResponse response)
    {
        if (!Enabled)
            throw new InvalidOperationException("the response store is off");
        lock (_gate)
        {
            Expire();
            if (!_byTenant.TryGetValue(response.Tenant, out var tenant))
                _byTenant[response.Tenant] = tenant = new TenantResponses();
            _byId[response.Id] = tenant.Add(response);
            while (tenant.Bytes > _options.StoreBytesPerTenant && tenant.Oldest is { } oldest)
                Remove(oldest);
            long total = _byTenant.Values.Sum(t => t.Bytes);
            while (total > _options.StoreBytes)
            {
                var largest = _byTenant.Values.MaxBy(t => t.Bytes)!;
                total -= largest.Oldest!.Bytes;
                Remove(largest.Oldest);
            }

            return _byId.ContainsKey(response.Id);
        }
    }

    /// <summary>Forgets <paramref name="id"/> if <paramref name="tenant"/> stored it; false when it finds nothing of the tenant's.</summary>
    public bool Delete(string tenant, string id)
    {
        lock (_gate)
        {
            Expire();
            if (!_byId.TryGetValue(id, out var node) || node.Value.Tenant != tenant)
                return false;
            Remove(node.Value);
            return true;
        }
    }

    private List<Measurement<long>> PerTenant(Func<TenantResponses, long> value)
    {
        lock (_gate)
        {
            Expire();
            return [.. _byTenant.Select(t => new Measurement<long>(value(t.Value), new KeyValuePair<string, object?>("tenant", t.Key)))];
        }
    }

    private void Expire()
    {
        var oldestKept = _time.GetUtcNow() - TimeSpan.FromMinutes(_options.StoreMinutes);
        foreach (var tenant in _byTenant.Values.ToList())
            while (tenant.Oldest is { } oldest && oldest.CreatedAt <= oldestKept)
                Remove(oldest);
    }

    private void Remove(StoredResponse response)
    {
        var tenant = _byTenant[response.Tenant];
        tenant.Remove(_byId[response.Id]);
        _byId.Remove(response.Id);
        if (tenant.Count == 0)
            _byTenant.Remove(response.Tenant);
    }
}
