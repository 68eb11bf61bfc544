using System.Runtime.Intrinsics.X86;

namespace Serving.Engine.Kernels;

/// <summary>Whether the element-wise, decode-attention and fused decode kernels (Vector512 code) run here, in words for the start-up log.</summary>
public static class CpuVectorKernels
{
    /// <summary>See <see cref="VectorExp.IsSupported"/>.</summary>
    public static bool IsSupported => VectorExp.IsSupported;

    /// <summary>"AVX-512", "AVX2 …" or "off …".</summary>
    public static string Status => Avx512F.IsSupported ? "AVX-512"
        : VectorExp.IsSupported ? "AVX2 (each 512-bit operation as two 256-bit halves)"
        : "off (no AVX2 and FMA: libtorch ops)";
}
