namespace Serving.Engine.Runtime;

/// <summary>
/// Libtorch calls made on the current thread: those that returned a tensor (every TorchSharp op, view and factory creates
/// one managed handle) and the in-place ones made through the engine's op helpers (<see cref="TorchScalars"/>' *InPlace
/// methods, which the step's code uses for every in-place op). Shape queries are not counted. It is the count a decode
/// step's host overhead follows: on a GPU each such call is a dispatch and, for most, a kernel launch. Read it before and
/// after a step on the thread that runs it.
/// </summary>
public static class LibtorchCallCount
{
    [ThreadStatic]
    private static long _inPlace;

    /// <summary>Tensors created on this thread since it started.</summary>
    public static long TensorsCreatedOnThisThread
    {
        get
        {
            var stats = TorchSharp.DisposeScopeManager.Statistics.TensorStatistics;
            return stats.CreatedInScopeCount + stats.CreatedOutsideScopeCount;
        }
    }

    /// <summary>In-place calls through the op helpers on this thread since it started.</summary>
    public static long InPlaceOnThisThread => _inPlace;

    /// <summary>Both: the libtorch calls this thread made.</summary>
    public static long OnThisThread => TensorsCreatedOnThisThread + _inPlace;

    internal static void InPlace() => _inPlace++;
}
