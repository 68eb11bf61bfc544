using System.Collections;

namespace Serving.Batching.Scheduling;

/// <summary>
/// The running batch, in admission order: the one owner of who runs, how many each tenant runs, and the count other
/// threads read (<see cref="Snapshot"/>, for the queue limit). Engine loop only, but for <see cref="Snapshot"/>.
/// </summary>
internal sealed class RunningSet : IReadOnlyList<ScheduledRequest>
{
    private readonly List<ScheduledRequest> _requests = [];
    private readonly Dictionary<string, int> _perTenant = new(StringComparer.Ordinal);
    private int _snapshot;

    public int Count => _requests.Count;

    public ScheduledRequest this[int index] => _requests[index];

    /// <summary><see cref="Count"/> as of the last change, for any thread.</summary>
    public int Snapshot => Volatile.Read(ref _snapshot);

    /// <summary>Requests of <paramref name="tenant"/> running.</summary>
    public int OfTenant(string tenant) => _perTenant.GetValueOrDefault(tenant);

    /// <summary>The running request with <paramref name="id"/>, or null.</summary>
    public ScheduledRequest? Find(Contracts.RequestId id) => _requests.Find(r => r.Id == id);

    /// <summary>Adds a request just admitted (the youngest).</summary>
    public void Add(ScheduledRequest r)
    {
        _requests.Add(r);
        _perTenant[r.Tenant] = OfTenant(r.Tenant) + 1;
        Volatile.Write(ref _snapshot, _requests.Count);
    }

    /// <summary>Takes out a request that ended or was preempted.</summary>
    public void Remove(ScheduledRequest r)
    {
        if (!_requests.Remove(r))
            return;
        if (--_perTenant[r.Tenant] == 0)
            _perTenant.Remove(r.Tenant);
        Volatile.Write(ref _snapshot, _requests.Count);
    }

    public IEnumerator<ScheduledRequest> GetEnumerator() => _requests.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
