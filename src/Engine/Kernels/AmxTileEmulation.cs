using System.Runtime.InteropServices;
using Serving.Engine.Quantization;

namespace Serving.Engine.Kernels;

/// <summary>
/// The AMX kernels' own code with their tile instructions emulated in C (<c>src/Engine/Native/serving_tile.h</c>,
/// <c>serving_tile_emulated.c</c>), on any x86-64 CPU: the bf16 projection (<see cref="AmxNative"/>) and the int8 GEMM
/// (<see cref="Int8AmxNative"/>). For the tests only: no serving path calls it. The emulation counts every #UD or #GP the
/// hardware would raise (<see cref="Faults"/>), so a kernel that misconfigures its tiles fails here rather than on the
/// first AMX host. Built wherever the native library is; <c>SERVING_AMX_EMULATION=0</c> hides it.
/// </summary>
internal static unsafe class AmxTileEmulation
{
    private static readonly delegate* unmanaged[Cdecl]<byte*, float*, long, long, sbyte*, float*, int*, void*, int, void*, long, int, long, long, long, void> Int8Range;
    private static readonly delegate* unmanaged[Cdecl]<ushort*, long, long, ushort*, long, ushort*, void*, int, long, long, void> Bf16Range;
    private static readonly delegate* unmanaged[Cdecl]<long, long, long> PackedElements;
    private static readonly delegate* unmanaged[Cdecl]<ushort*, long, long, ushort*, long, long, int> Pack;
    private static readonly delegate* unmanaged[Cdecl]<ushort*, long, long, ushort*, void> PadInput;
    private static readonly delegate* unmanaged[Cdecl]<long> FaultCount;
    private static readonly delegate* unmanaged[Cdecl]<byte*> FirstFault;

    static AmxTileEmulation()
    {
        nint handle = ServingNativeLibrary.Load("SERVING_AMX_EMULATION", out _);
        if (handle == 0 || !NativeLibrary.TryGetExport(handle, "serving_gemm_s8_amx_emulated", out nint int8)
            || !NativeLibrary.TryGetExport(handle, "serving_amx_linear_emulated", out nint bf16)
            || !NativeLibrary.TryGetExport(handle, "serving_tile_emulated_faults", out nint faults)
            || !NativeLibrary.TryGetExport(handle, "serving_tile_emulated_first_fault", out nint first))
            return;
        Int8Range = (delegate* unmanaged[Cdecl]<byte*, float*, long, long, sbyte*, float*, int*, void*, int, void*, long, int, long, long, long, void>)int8;
        Bf16Range = (delegate* unmanaged[Cdecl]<ushort*, long, long, ushort*, long, ushort*, void*, int, long, long, void>)bf16;
        FaultCount = (delegate* unmanaged[Cdecl]<long>)faults;
        FirstFault = (delegate* unmanaged[Cdecl]<byte*>)first;
        PackedElements = (delegate* unmanaged[Cdecl]<long, long, long>)NativeLibrary.GetExport(handle, "serving_amx_packed_elements");
        Pack = (delegate* unmanaged[Cdecl]<ushort*, long, long, ushort*, long, long, int>)NativeLibrary.GetExport(handle, "serving_amx_pack");
        PadInput = (delegate* unmanaged[Cdecl]<ushort*, long, long, ushort*, void>)NativeLibrary.GetExport(handle, "serving_amx_pad_input");
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

    /// <summary>
    /// The bf16 projection (<c>serving_amx_linear</c>) as <see cref="AmxPackedWeight"/> runs it: <paramref name="w"/>
    /// <c>[n, k]</c> packed, <paramref name="x"/> <c>[m, k]</c> padded to whole tiles, every block of 32 outputs, on this
    /// thread. Returns y <c>[m, n]</c>: bf16 bits, or (<paramref name="float32Output"/>) float32 bits of bf16-rounded values.
    /// </summary>
    public static uint[] Bf16Linear(ReadOnlySpan<ushort> w, int n, int k, ReadOnlySpan<ushort> x, int m, ReadOnlySpan<ushort> bias, bool float32Output)
    {
        Require();
        if (n < 1 || k < 1 || m < 1 || w.Length != (long)n * k || x.Length != (long)m * k || (!bias.IsEmpty && bias.Length != n))
            throw new ArgumentException($"w [{n}, {k}], x [{m}, {k}], bias [{n}] do not match the spans' lengths");
        long mp = (m + 31) / 32 * 32, kp = (k + 31) / 32 * 32;
        var packed = new ushort[PackedElements(n, k)];
        var padded = new ushort[mp * kp];
        var y = new ushort[(long)m * n * (float32Output ? 2 : 1)];
        fixed (ushort* pw = w)
        fixed (ushort* pp = packed)
        fixed (ushort* px = x)
        fixed (ushort* pad = padded)
        fixed (ushort* pb = bias)
        fixed (ushort* py = y)
        {
            if (Pack(pw, n, k, pp, 0, (n + 31) / 32) != 0)
                throw new OutOfMemoryException("packing scratch");
            PadInput(px, m, k, pad);
            Bf16Range(pad, m, k, pp, n, bias.IsEmpty ? null : pb, py, float32Output ? 1 : 0, 0, (n + 31) / 32);
        }

        return float32Output ? MemoryMarshal.Cast<ushort, uint>(y).ToArray() : [.. y.Select(v => (uint)v)];
    }

    private static void Require()
    {
        if (!IsAvailable)
            throw new InvalidOperationException($"{ServingNativeLibrary.FileName} has no emulated AMX kernels");
    }
}
