using static TorchSharp.torch;

namespace Serving.Engine.Runtime;

/// <summary>Where a contiguous CPU tensor's elements start. Its storage is native and never moves while the tensor lives.</summary>
public static unsafe class CpuTensorMemory
{
    public static byte* Address(Tensor t)
    {
        fixed (byte* p = t.bytes)
            return p;
    }

    public static nint AddressOf(Tensor t) => (nint)Address(t);
}
