using TorchSharp;

namespace Serving.Engine.Runtime;

/// <summary>
/// Live TorchSharp tensors in this process: created and not yet disposed (or finalized). A count that keeps growing under
/// steady traffic is a native-memory leak that the managed heap does not show.
/// </summary>
public static class NativeTensorCount
{
    public static long Live => torch.Tensor.TotalCount;

    public static long Peak => torch.Tensor.PeakCount;
}
