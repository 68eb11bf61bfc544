using System.Buffers;
using Polly.Timeout;

namespace Serving.AdapterStore.Sources;

/// <summary>
/// Time limits on one attempt against a remote store, turned into <see cref="TimeoutRejectedException"/> so the retry
/// and the circuit breaker treat a hung store like a refused one. Limits are per phase, not per transfer: a large object
/// may take minutes to arrive, but the store may not take long to start answering, nor go quiet mid-body.
/// </summary>
internal static class StoreTimeouts
{
    /// <summary>Runs <paramref name="call"/> (a request up to its response headers) with at most <paramref name="limit"/>.</summary>
    public static async Task<T> RespondWithin<T>(Func<CancellationToken, Task<T>> call, TimeSpan limit, string what, CancellationToken ct)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(ct);
        attempt.CancelAfter(limit);
        try
        {
            return await call(attempt.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutRejectedException($"the store did not answer {what} within {limit.TotalSeconds:0.###} s", limit, ex);
        }
    }

    /// <summary>
    /// Copies <paramref name="body"/> to <paramref name="target"/>, failing when no byte arrives for <paramref name="idle"/>.
    /// <paramref name="abort"/> closes the body's connection: a read that does not observe cancellation still ends.
    /// </summary>
    public static async Task CopyWithIdleLimit(Stream body, Stream target, TimeSpan idle, string what, Action abort, CancellationToken ct)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        using var quiet = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var onQuiet = quiet.Token.Register(abort);
        try
        {
            while (true)
            {
                quiet.CancelAfter(idle);
                int n = await body.ReadAsync(buffer, quiet.Token).ConfigureAwait(false);
                if (n == 0)
                    return;
                quiet.CancelAfter(Timeout.InfiniteTimeSpan);
                await target.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (quiet.IsCancellationRequested && !ct.IsCancellationRequested && ex is OperationCanceledException or IOException or ObjectDisposedException)
        {
            throw new TimeoutRejectedException($"the store sent no bytes of {what} for {idle.TotalSeconds:0.###} s", idle, ex);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
