using System.Runtime.InteropServices;

namespace Serving.Engine.Kernels;

/// <summary>
/// The AVX512-BF16 LoRA row kernel of <c>libserving_amx.so</c> (<c>src/Engine/Native/serving_lora.c</c>), which
/// <see cref="CpuLoraKernel"/> runs bfloat16 rows with one adapter each on. Absent library (no gcc at build time), a CPU
/// without AVX512-BF16, or <c>SERVING_LORA_NATIVE=0</c>: <see cref="IsAvailable"/> is false and those rows stay on the C#
/// kernel (<see cref="LoraRowMath"/>, <see cref="LoraRowBlockMath"/>).
/// </summary>
public static unsafe class LoraNative
{
    /// <summary>Largest rank the native kernel takes (its per-row scratch is sized for it); larger slots use the C# kernel.</summary>
    public const int MaxRank = 64;

    /// <summary>Most rows one call takes (serving_lora.c's LORA_MAX_ROWS).</summary>
    public const int MaxRows = 32;

    /// <summary>
    /// <c>(x[rows], A, Bt, rows, rank, in, out, factor[rows], y[rows])</c>: for rows (1..<see cref="MaxRows"/>) sharing one adapter,
    /// <c>y_m[o] = bf16(y_m[o] + Σ_j bf16(factor_m · A[j]·x_m) · Bt[j][o])</c>; see serving_lora.c.
    /// </summary>
    public static readonly delegate* unmanaged[Cdecl]<ushort**, ushort*, ushort*, int, int, int, int, float*, ushort**, void> Rows;

    static LoraNative()
    {
        nint handle = ServingNativeLibrary.Load("SERVING_LORA_NATIVE", out string? whyNot);
        if (handle == 0 || !NativeLibrary.TryGetExport(handle, "serving_lora_bf16_init", out nint init))
        {
            Status = whyNot ?? $"{ServingNativeLibrary.FileName} has no LoRA kernel (built before it was added)";
            return;
        }
        if (((delegate* unmanaged[Cdecl]<int>)init)() != 1)
        {
            Status = "the CPU has no AVX512-BF16";
            return;
        }
        Rows = (delegate* unmanaged[Cdecl]<ushort**, ushort*, ushort*, int, int, int, int, float*, ushort**, void>)NativeLibrary.GetExport(handle, "serving_lora_bf16_rows");
        IsAvailable = true;
        Status = "in use";
    }

    /// <summary>True when bfloat16 LoRA rows can run on the native kernel in this process.</summary>
    public static bool IsAvailable { get; }

    /// <summary>Why <see cref="IsAvailable"/> is what it is, for the start-up log and the benchmarks.</summary>
    public static string Status { get; }
}
