namespace Serving.Batching.Scheduling;

/// <summary>
/// An auto-resetting wake-up for the engine loop. <see cref="Capture"/> before looking for work, then wait on the captured
/// task: a <see cref="Set"/> after the capture completes it, and one before is seen by the look itself.
/// </summary>
internal sealed class WorkSignal
{
    private TaskCompletionSource _current = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Set() => Volatile.Read(ref _current).TrySetResult();

    public Task Capture()
    {
        var current = Volatile.Read(ref _current);
        if (!current.Task.IsCompleted)
            return current.Task;
        var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.CompareExchange(ref _current, fresh, current);
        return Volatile.Read(ref _current).Task;
    }
}
