using Microsoft.Extensions.Caching.Memory;
using Serving.AdapterStore.Registry;
using Serving.Contracts;
using Serving.Contracts.Lora;

namespace Serving.AdapterStore.Tiers;

/// <summary>
/// The host-memory tier: parsed, validated adapter weights by version in a <see cref="MemoryCache"/> whose
/// <c>SizeLimit</c> is the byte budget (each entry's size is its tensor bytes).
/// Reads run on the thread pool, never on the engine loop, and are single-flight: however many requests ask for a cold
/// adapter at once, it is read and parsed exactly once. A failed read is remembered for <see cref="FailureTtl"/>, so
/// every request waiting on it sees the error (instead of re-reading forever), and then retried, so a fixed adapter
/// recovers. Thread-safe.
/// </summary>
/// <remarks>
/// MemoryCache refuses an entry that would exceed its limit and compacts later; an adapter just read is the one most
/// likely to be asked for again, so room is made first, synchronously, by compacting least recently used entries.
/// </remarks>
public sealed class HostAdapterCache : IDisposable
{
    public static readonly TimeSpan FailureTtl = TimeSpan.FromSeconds(5);
    private readonly Func<AdapterRecord, LoraAdapterWeights> _read;
    private readonly TimeProvider _time;
    private readonly long _capacity;
    private readonly MemoryCache _cache;
    private readonly Lock _lock = new();
    private readonly Dictionary<AdapterVersionKey, Task<LoraAdapterWeights>> _inFlight = [];
    private readonly Dictionary<AdapterVersionKey, (Task<LoraAdapterWeights> Task, DateTimeOffset At)> _failed = [];
    private readonly Action<TimeSpan>? _readObserved;
    private int _hits, _misses, _evictions;

    /// <param name="capacityBytes">Byte budget (the MemoryCache size limit).</param>
    /// <param name="read">Reads, validates and parses one version (disk or source → host).</param>
    /// <param name="time">Clock for the failure TTL.</param>
    /// <param name="readObserved">Told how long each successful read took (load-latency metrics).</param>
    public HostAdapterCache(long capacityBytes, Func<AdapterRecord, LoraAdapterWeights> read, TimeProvider? time = null, Action<TimeSpan>? readObserved = null)
    {
        _readObserved = readObserved;
        ArgumentOutOfRangeException.ThrowIfLessThan(capacityBytes, 1);
        _capacity = capacityBytes;
        _read = read;
        _time = time ?? TimeProvider.System;
        _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = capacityBytes, TrackStatistics = true });
    }

    /// <summary>Bytes of the adapters held.</summary>
    public long Bytes => _cache.GetCurrentStatistics()?.CurrentEstimatedSize ?? 0;

    /// <summary>Whether <paramref name="key"/>'s weights are held, without touching its recency.</summary>
    public bool Holds(AdapterVersionKey key) => _cache.Keys.Contains(key);

    public int Hits => Volatile.Read(ref _hits);
    public int Misses => Volatile.Read(ref _misses);
    public int Evictions => Volatile.Read(ref _evictions);

    /// <summary>The weights of <paramref name="record"/>'s version: completed when cached, otherwise a (shared) read in flight.</summary>
    public Task<LoraAdapterWeights> GetOrLoad(AdapterRecord record)
    {
        var key = new AdapterVersionKey(record.Id, record.Version);
        lock (_lock)
        {
            if (_cache.TryGetValue(key, out Task<LoraAdapterWeights>? cached) && cached is not null)
            {
                Interlocked.Increment(ref _hits);
                return cached;
            }

            // A read that already failed is answered by the failure record below (its TTL), even before its completion
            // callback has removed it from the in-flight set.
            if (_inFlight.TryGetValue(key, out var pending) && !pending.IsFaulted && !pending.IsCanceled)
            {
                Interlocked.Increment(ref _hits);
                return pending;
            }

            if (_failed.TryGetValue(key, out var failure) && _time.GetUtcNow() - failure.At < FailureTtl)
            {
                Interlocked.Increment(ref _hits);
                return failure.Task;
            }

            Interlocked.Increment(ref _misses);
            var task = Task.Run(() => ReadRecordingFailure(key, record));
            _inFlight[key] = task;
            task.ContinueWith(t => Ended(key, t), TaskScheduler.Default);
            return task;
        }
    }

    /// <summary>
    /// Leaves the in-flight set only after the read's task has completed: a caller that retries as soon as its read ended
    /// (the engine loop) then still finds the finished read when the cache could not keep it (an adapter over the budget).
    /// </summary>
    private void Ended(AdapterVersionKey key, Task<LoraAdapterWeights> task)
    {
        lock (_lock)
        {
            if (_inFlight.TryGetValue(key, out var current) && current == task)
                _inFlight.Remove(key);
        }
    }

    /// <summary>
    /// Files a read's weights in the cache before its task completes, so whoever awaited the read finds them held (and
    /// counted in <see cref="Bytes"/>) when it resumes. Called under the lock.
    /// </summary>
    private void File(AdapterVersionKey key, LoraAdapterWeights weights)
    {
        long size = weights.ParameterCount * sizeof(float);
        MakeRoom(size);
        var options = new MemoryCacheEntryOptions { Size = size };
        // An adapter larger than the whole budget is refused by the cache (and counted as evicted), the room made above notwithstanding.
        if (Bytes + size > _capacity)
            Interlocked.Increment(ref _evictions);
        _cache.Set(key, Task.FromResult(weights), options);
    }

    /// <summary>
    /// Compacts least recently used entries, one at a time, until <paramref name="size"/> more bytes fit, counting each as an
    /// eviction here rather than in the eviction callback: the cache runs its callbacks later on the thread pool, and a
    /// count that lagged its evictions by a busy pool's delay was seen seconds late.
    /// </summary>
    private void MakeRoom(long size)
    {
        while (_cache.Count > 0 && Bytes + size > _capacity)
        {
            int before = _cache.Count;
            _cache.Compact(1.0 / before + 1e-9);
            if (_cache.Count == before)
                break;
            Interlocked.Add(ref _evictions, before - _cache.Count);
        }
    }

    /// <summary>
    /// A success is filed in the cache, and a failure recorded, before the task ends, so no waiter can see the end without
    /// its effect.
    /// </summary>
    private LoraAdapterWeights ReadRecordingFailure(AdapterVersionKey key, AdapterRecord record)
    {
        try
        {
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            var weights = _read(record);
            _readObserved?.Invoke(System.Diagnostics.Stopwatch.GetElapsedTime(started));
            lock (_lock)
            {
                _failed.Remove(key);
                File(key, weights);
            }

            return weights;
        }
        catch
        {
            lock (_lock)
                _failed[key] = (_inFlight.GetValueOrDefault(key) ?? Task.FromException<LoraAdapterWeights>(new InvalidOperationException("read failed")), _time.GetUtcNow());
            throw;
        }
    }

    public void Dispose() => _cache.Dispose();
}
