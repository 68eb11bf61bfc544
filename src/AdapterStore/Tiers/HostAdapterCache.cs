using Serving.AdapterStore.Registry;
using Serving.Engine.Lora;

namespace Serving.AdapterStore.Tiers;

/// <summary>
/// The host-memory tier: parsed, validated adapter weights by version, bounded in bytes with LRU eviction. Reads run
/// on the thread pool, never on the engine loop, and are single-flight: however many requests ask for a cold
/// adapter at once, it is read and parsed exactly once. A failed read is remembered for <see cref="FailureTtl"/>, so
/// every request waiting on it sees the error (instead of re-reading forever), and then retried, so a fixed adapter
/// recovers. Thread-safe.
/// </summary>
internal sealed class HostAdapterCache(long capacityBytes, Func<AdapterRecord, LoraAdapterWeights> read, TimeProvider? time = null)
{
    public static readonly TimeSpan FailureTtl = TimeSpan.FromSeconds(5);
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly Dictionary<AdapterVersionKey, DateTimeOffset> _failedAt = [];
    private readonly Lock _lock = new();
    private readonly Dictionary<AdapterVersionKey, Task<LoraAdapterWeights>> _entries = [];
    private readonly LinkedList<AdapterVersionKey> _lru = [];
    private long _bytes;

    public long Bytes
    {
        get
        {
            lock (_lock)
                return _bytes;
        }
    }

    public int Hits { get; private set; }
    public int Misses { get; private set; }
    public int Evictions { get; private set; }

    /// <summary>The weights of <paramref name="record"/>'s version: completed when cached, otherwise a (shared) read in flight.</summary>
    public Task<LoraAdapterWeights> GetOrLoad(AdapterRecord record)
    {
        var key = new AdapterVersionKey(record.Id, record.Version);
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var existing)
                && (existing.IsCompletedSuccessfully || !existing.IsCompleted || _time.GetUtcNow() - _failedAt.GetValueOrDefault(key) < FailureTtl))
            {
                Hits++;
                Touch(key);
                return existing;
            }

            Misses++;
            var task = Task.Run(() => ReadRecordingFailure(key, record));
            _entries[key] = task;
            _lru.Remove(key);
            _lru.AddFirst(key);
            task.ContinueWith(t => Completed(key, t), TaskScheduler.Default);
            return task;
        }
    }

    private void Completed(AdapterVersionKey key, Task<LoraAdapterWeights> task)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(key, out var current) || current != task)
                return;
            if (!task.IsCompletedSuccessfully)
                return;

            _bytes += task.Result.ParameterCount * sizeof(float);
            // Evict least recently used completed entries beyond the budget; never the one just loaded.
            for (var node = _lru.Last; _bytes > capacityBytes && node is not null;)
            {
                var previous = node.Previous;
                if (!node.Value.Equals(key) && _entries[node.Value].IsCompleted)
                {
                    if (_entries[node.Value].IsCompletedSuccessfully)
                        _bytes -= _entries[node.Value].Result.ParameterCount * sizeof(float);
                    _entries.Remove(node.Value);
                    _lru.Remove(node);
                    Evictions++;
                }

                node = previous;
            }
        }
    }

    /// <summary>The failure time is recorded before the task faults, so no waiter can see the fault without it.</summary>
    private LoraAdapterWeights ReadRecordingFailure(AdapterVersionKey key, AdapterRecord record)
    {
        try
        {
            return read(record);
        }
        catch
        {
            lock (_lock)
                _failedAt[key] = _time.GetUtcNow();
            throw;
        }
    }

    private void Touch(AdapterVersionKey key)
    {
        _lru.Remove(key);
        _lru.AddFirst(key);
    }
}
