namespace Serving.Runtime.Generation;

/// <summary>Cancels a token source when disposed: ties a request's engine-side life to the scope that consumes its tokens.</summary>
internal readonly struct CancelOnDispose(CancellationTokenSource source) : IDisposable
{
    public void Dispose() => source.Cancel();
}
