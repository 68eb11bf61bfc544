using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary>
/// How a kernel reads one element type of tensor memory as float32 lanes. Kernels written generically over a struct
/// implementing this are compiled once per element type, so the hot loops carry no per-load dtype branch.
/// </summary>
internal unsafe interface ITensorElement
{
    /// <summary>Bytes per element.</summary>
    static abstract int Size { get; }

    /// <summary>16 elements at <paramref name="p"/> as float32 lanes.</summary>
    static abstract Vector512<float> Load16(byte* p);
}
