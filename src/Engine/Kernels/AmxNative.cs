using System.Runtime.InteropServices;

namespace Serving.Engine.Kernels;

/// <summary>
/// Entry points of <c>libserving_amx.so</c>, built from <c>src/Engine/Native/serving_amx.c</c> by the Engine project when
/// gcc is present (build/ServingNative.targets). Absent library, a CPU without AMX-BF16, a kernel that does not grant
/// the tile state, or <c>SERVING_AMX=0</c>: <see cref="IsAvailable"/> is false and bf16 projections stay on libtorch.
/// <c>SERVING_AMX=emulate</c> runs the kernel with its tile instructions emulated on any CPU (tests only).
/// </summary>
public static unsafe class AmxNative
{
    public const string LibraryFile = ServingNativeLibrary.FileName;

    public static readonly delegate* unmanaged[Cdecl]<long, long, long> PackedElements;
    public static readonly delegate* unmanaged[Cdecl]<ushort*, long, long, ushort*, long, long, int> Pack;
    public static readonly delegate* unmanaged[Cdecl]<ushort*, long, long, long*, long, ushort*, void> GatherRows;
    public static readonly delegate* unmanaged[Cdecl]<ushort*, long, long, ushort*, void> PadInput;
    public static readonly delegate* unmanaged[Cdecl]<ushort*, long, long, ushort*, long, ushort*, void*, int, long, long, void> Linear;

    static AmxNative()
    {
        nint handle = ServingNativeLibrary.Load("SERVING_AMX", out string? whyNot);
        if (handle == 0)
        {
            Status = whyNot!;
            return;
        }
        // SERVING_AMX=emulate: the kernel with its tile instructions emulated in C (AmxTileEmulation), on any CPU, so that
        // a test run can take every bf16 projection through the kernel's own code. Slow; for tests only.
        bool emulated = Environment.GetEnvironmentVariable("SERVING_AMX") == "emulate";
        var init = (delegate* unmanaged[Cdecl]<int>)NativeLibrary.GetExport(handle, "serving_amx_init");
        if (!emulated && init() != 1)
        {
            Status = "the CPU has no AMX-BF16 or the kernel does not grant the tile state";
            return;
        }
        PackedElements = (delegate* unmanaged[Cdecl]<long, long, long>)NativeLibrary.GetExport(handle, "serving_amx_packed_elements");
        Pack = (delegate* unmanaged[Cdecl]<ushort*, long, long, ushort*, long, long, int>)NativeLibrary.GetExport(handle, "serving_amx_pack");
        GatherRows = (delegate* unmanaged[Cdecl]<ushort*, long, long, long*, long, ushort*, void>)NativeLibrary.GetExport(handle, "serving_amx_gather_rows");
        PadInput = (delegate* unmanaged[Cdecl]<ushort*, long, long, ushort*, void>)NativeLibrary.GetExport(handle, "serving_amx_pad_input");
        Linear = (delegate* unmanaged[Cdecl]<ushort*, long, long, ushort*, long, ushort*, void*, int, long, long, void>)NativeLibrary.GetExport(handle,
            emulated ? "serving_amx_linear_emulated" : "serving_amx_linear");
        IsAvailable = true;
        Status = emulated ? "emulated in C (SERVING_AMX=emulate: for tests, slow)" : "in use";
    }

    /// <summary>True when bf16 projections can run on AMX tiles in this process.</summary>
    public static bool IsAvailable { get; }

    /// <summary>Why <see cref="IsAvailable"/> is what it is, for the start-up log and the benchmarks.</summary>
    public static string Status { get; }
}
