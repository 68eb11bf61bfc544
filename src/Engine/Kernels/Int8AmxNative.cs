using System.Runtime.InteropServices;
using Serving.Engine.Quantization;

namespace Serving.Engine.Kernels;

/// <summary>
/// The AMX-INT8 twin of <see cref="Int8Native"/>'s GEMM (<c>src/Engine/Native/serving_int8_amx.c</c>): the same
/// arguments, packed weights (<see cref="Int8Matrix"/>), integer sums and epilogue, so the same outputs bit for bit.
/// <see cref="Int8Native"/> gives it the calls of at least <see cref="MinRows"/> rows whose K is a multiple of 4 when
/// <see cref="IsAvailable"/>:
/// <code>
/// per block of 64 outputs, chunk c of ≤ 16 input rows, run r of 64 inputs (16 groups of 4), j = 0..3:
///     C_j [rows, 16] int32 += A [rows, 64] u8 (xu[c, r]) · B_j [16, 16 × 4] s8 (the block's vectors j of the run's groups)
/// y[m, n] = round( xscale[m] · W.Scales[n] · (C[m, n] − 128·W.RowSums[n]) + bias[n] )
/// </code>
/// Available where the CPU has AMX-INT8, the OS grants this process tile data, <c>SERVING_INT8_AMX</c> is not 0, and a
/// self-check at first use (a short chunk of rows and a short run of inputs) gives the exact sums' values bit for bit. On
/// CPUs without AMX the tests run the same kernel with its tile instructions emulated in C (<see cref="AmxTileEmulation"/>),
/// and <c>SERVING_INT8_AMX=emulate</c> sends this class's calls there (tests only: slow).
/// </summary>
public static unsafe class Int8AmxNative
{
    /// <summary>
    /// Fewest input rows a call takes on AMX. Why: up to 6 rows the VNNI kernel holds every row's sums in registers and
    /// streams at the read bound; from 7 its multiply-adds take about as long as the read (docs/benchmarks/int8.md), and
    /// one TDPBUSD does the work of 16 VPDPBUSD per row. Not yet measured on an AMX machine.
    /// </summary>
    public const int MinRows = 7;

    static Int8AmxNative()
    {
        nint handle = ServingNativeLibrary.Load("SERVING_INT8_NATIVE", out string? whyNot);
        if (handle == 0)
            Status = whyNot!;
        else if (Environment.GetEnvironmentVariable("SERVING_INT8_AMX") == "0")
            Status = "disabled by SERVING_INT8_AMX=0";
        else if (Environment.GetEnvironmentVariable("SERVING_INT8_AMX") == "emulate" && NativeLibrary.TryGetExport(handle, "serving_gemm_s8_amx_emulated", out nint emulated))
        {
            // The kernel with its tile instructions emulated in C (AmxTileEmulation), on any CPU, so that a test run can take
            // every int8 call of MinRows rows or more through the kernel's own code. Slow; for tests only.
            GemmRange = (delegate* unmanaged[Cdecl]<byte*, float*, long, long, sbyte*, float*, int*, void*, int, void*, long, int, long, long, long, void>)emulated;
            IsAvailable = Int8AmxSelfCheck.Run(GemmRange) is null;
            Status = IsAvailable ? "emulated in C (SERVING_INT8_AMX=emulate: for tests, slow)" : "the emulated kernel failed its self-check";
        }
        else if (!NativeLibrary.TryGetExport(handle, "serving_int8_amx_init", out nint init) || !NativeLibrary.TryGetExport(handle, "serving_gemm_s8_amx", out nint gemm))
            Status = $"{ServingNativeLibrary.FileName} has no AMX int8 kernel (built before it was added)";
        else if (((delegate* unmanaged[Cdecl]<int>)init)() != 1)
            Status = "the CPU has no AMX-INT8, or the OS does not grant tile data";
        else
        {
            var hardware = (delegate* unmanaged[Cdecl]<byte*, float*, long, long, sbyte*, float*, int*, void*, int, void*, long, int, long, long, long, void>)gemm;
            string? mismatch = Int8AmxSelfCheck.Run(hardware);
            if (mismatch is null)
            {
                GemmRange = hardware;
                IsAvailable = true;
                Status = "in use";
            }
            else
                Status = $"AMX-INT8 present, but its self-check failed ({mismatch}); the VNNI kernel runs instead";
        }
    }

    /// <summary>True when int8 GEMMs of at least <see cref="MinRows"/> rows run on AMX in this process.</summary>
    public static bool IsAvailable { get; }

    /// <summary>Why <see cref="IsAvailable"/> is what it is, for the start-up log and the benchmarks.</summary>
    public static string Status { get; }

    /// <summary>The hardware kernel (<c>serving_gemm_s8_amx</c>), null unless <see cref="IsAvailable"/>: <see cref="Int8Native"/>'s GEMM arguments.</summary>
    internal static readonly delegate* unmanaged[Cdecl]<byte*, float*, long, long, sbyte*, float*, int*, void*, int, void*, long, int, long, long, long, void> GemmRange;

    /// <summary>True when this call can take the AMX kernel.</summary>
    internal static bool Takes(int rows, long columns) => IsAvailable && rows >= MinRows && columns % Int8Matrix.GroupColumns == 0;

    /// <summary>
    /// <paramref name="kernel"/> (<c>serving_gemm_s8_amx</c>'s arguments) on float32 spans checked by the caller, blocks
    /// [<paramref name="firstBlock"/>, <paramref name="endBlock"/>) of 64 outputs, on this thread: the self-check's and the
    /// tests' way in.
    /// </summary>
    internal static void CallOnSpans(delegate* unmanaged[Cdecl]<byte*, float*, long, long, sbyte*, float*, int*, void*, int, void*, long, int, long, long, long, void> kernel,
        ReadOnlySpan<byte> offsetInput, ReadOnlySpan<float> inputScales, int rows, Int8Matrix w, ReadOnlySpan<float> bias, Span<float> y, int ldy,
        long firstBlock, long endBlock)
    {
        fixed (byte* x = offsetInput)
        fixed (float* xs = inputScales)
        fixed (float* b = bias)
        fixed (float* output = y)
        fixed (sbyte* q = w.Packed)
        fixed (float* ws = w.Scales)
        fixed (int* sums = w.RowSums)
            kernel(x, xs, rows, w.Columns, q, ws, sums, bias.IsEmpty ? null : b, 0, output, ldy, 1, w.Rows, firstBlock, endBlock);
    }
}
