namespace Serving.Engine.Runtime;

/// <summary>
/// Libtorch calls made on the current thread that returned a tensor (every TorchSharp op, view and factory creates one
/// managed handle; in-place ops, which return their input, and shape queries do not): the count that a decode step's
/// host overhead follows, since on a GPU each such call is a dispatch and, for most, a kernel launch. Read it before
/// and after a step on the thread that runs it.
/// </summary>
public static class LibtorchCallCount
{
    /// <summary>Tensors created on this thread since it started.</summary>
    public static long TensorsCreatedOnThisThread
    {
        get
        {
            var stats = TorchSharp.DisposeScopeManager.Statistics.TensorStatistics;
            return stats.CreatedInScopeCount + stats.CreatedOutsideScopeCount;
        }
    }
}
