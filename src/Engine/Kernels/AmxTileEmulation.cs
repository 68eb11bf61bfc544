using System.Runtime.InteropServices;
using Serving.Engine.Quantization;

namespace Serving.Engine.Kernels;

/// <summary>
/// The AMX kernels' own code with their tile instructions emulated in C (<c>src/Engine/Native/serving_tile.h</c>,
/// <c>serving_tile_emulated.c</c>), on any x86-64 CPU, for the tests: the int8 GEMM on spans (<see cref="Int8Gemm"/>), and
/// the count of every #UD or #GP the hardware would have raised in this process (<see cref="Faults"/>), so that a kernel
/// that misconfigures its tiles fails here rather than on the first AMX host. The bf16 projection's emulated build is
/// reached through <see cref="AmxNative"/> with <c>SERVING_AMX=emulate</c> (and the int8 GEMM's through
/// <see cref="Int8AmxNative"/> with <c>SERVING_INT8_AMX=emulate</c>). Built wherever the native library is;
/// <c>SERVING_AMX_EMULATION=0</c> hides it.
/// </summary>
internal static unsafe class AmxTileEmulation
{
    private static readonly delegate* unmanaged[Cdecl]<byte*, float*, long, long, sbyte*, float*, int*, void*, int, void*, long, int, long, long, long, void> Int8Range;
    private static readonly delegate* unmanaged[Cdecl]<long> FaultCount;
    private static readonly delegate* unmanaged[Cdecl]<byte*> FirstFault;

    static AmxTileEmulation()
    {
        nint handle = ServingNativeLibrary.Load("SERVING_AMX_EMULATION", out _);
        if (handle == 0 || !NativeLibrary.TryGetExport(handle, "serving_gemm_s8_amx_emulated", out nint int8)
            || !NativeLibrary.TryGetExport(handle, "serving_tile_emulated_faults", out nint faults)
            || !NativeLibrary.TryGetExport(handle, "serving_tile_emulated_first_fault", out nint first))
            return;
        Int8Range = (delegate* unmanaged[Cdecl]<byte*, float*, long, long, sbyte*, float*, int*, void*, int, void*, long, int, long, long, long, void>)int8;
        FaultCount = (delegate* unmanaged[Cdecl]<long>)faults;
        FirstFault = (delegate* unmanaged[Cdecl]<byte*>)first;
        IsAvailable = true;
    }

    /// <summary>True when the library exports the emulated kernels.</summary>
    public static bool IsAvailable { get; }

    /// <summary>Faults counted in this process where the hardware would raise #UD or #GP, and the first one's description.</summary>
    public static (long Count, string First) Faults => IsAvailable ? (FaultCount(), Marshal.PtrToStringUTF8((nint)FirstFault()) ?? "") : (0, "");

    /// <summary>
    /// The int8 GEMM (<c>serving_gemm_s8_amx</c>) on float32 spans, blocks [<paramref name="firstBlock"/>,
    /// <paramref name="endBlock"/>) of 64 outputs, on this thread: <see cref="Int8Native"/>'s GEMM arguments and results.
    /// </summary>
    public static void Int8Gemm(ReadOnlySpan<byte> offsetInput, ReadOnlySpan<float> inputScales, int rows, Int8Matrix w, ReadOnlySpan<float> bias,
        Span<float> y, int ldy, long firstBlock, long endBlock)
    {
        Require();
        Int8Linear.CheckSpans(offsetInput, inputScales, rows, w, bias, y, ldy);
        if (w.Columns % Int8Matrix.GroupColumns != 0)
            throw new ArgumentException($"the AMX kernel takes inputs in whole groups of {Int8Matrix.GroupColumns}, not {w.Columns}", nameof(w));
        long blocks = (w.Rows + Int8Matrix.BlockRows - 1) / Int8Matrix.BlockRows;
        if (firstBlock < 0 || endBlock > blocks || firstBlock > endBlock)
            throw new ArgumentOutOfRangeException(nameof(firstBlock), $"blocks [{firstBlock}, {endBlock}) outside [0, {blocks})");
        Int8AmxNative.CallOnSpans(Int8Range, offsetInput, inputScales, rows, w, bias, y, ldy, firstBlock, endBlock);
    }

    private static void Require()
    {
        if (!IsAvailable)
            throw new InvalidOperationException($"{ServingNativeLibrary.FileName} has no emulated AMX kernels");
    }
}
