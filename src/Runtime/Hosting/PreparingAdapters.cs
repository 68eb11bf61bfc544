using System.Collections.Concurrent;
using Serving.Contracts;

namespace Serving.Runtime.Hosting;

/// <summary>
/// Adapters the server has announced but is still preparing (the demo adapters trained after start-up): a request naming
/// one is told to come back (503 with Retry-After) instead of being told it does not exist. An adapter leaves this list
/// when it is ready, and is then found in the store like any other.
/// </summary>
/// <param name="time">The clock estimates are read against.</param>
public sealed class PreparingAdapters(TimeProvider time)
{
    /// <summary>When an adapter with no estimate yet is expected: a request is asked to come back after this long.</summary>
    public static readonly TimeSpan UnknownWait = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<AdapterId, DateTimeOffset?> _readyBy = new();

    /// <summary>Announces (or re-estimates) <paramref name="id"/>: expected ready by <paramref name="readyBy"/>, or unknown.</summary>
    public void Expect(AdapterId id, DateTimeOffset? readyBy) => _readyBy[id] = readyBy;

    /// <summary><paramref name="id"/> is ready (or will not be prepared after all).</summary>
    public void Done(AdapterId id) => _readyBy.TryRemove(id, out _);

    /// <summary>The adapters still being prepared, in id order.</summary>
    public IReadOnlyList<AdapterId> Pending => [.. _readyBy.Keys.OrderBy(id => id.Value, StringComparer.Ordinal)];

    /// <summary>True when <paramref name="id"/> is being prepared; <paramref name="retryAfter"/>: how long a client should wait (at least 1 s).</summary>
    public bool IsPreparing(AdapterId id, out TimeSpan retryAfter)
    {
        retryAfter = default;
        if (!_readyBy.TryGetValue(id, out var readyBy))
            return false;
        var wait = readyBy is { } at ? at - time.GetUtcNow() : UnknownWait;
        retryAfter = wait < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : wait;
        return true;
    }
}
