using System.Runtime.InteropServices;

namespace Serving.Engine.Runtime;

/// <summary>
/// Process-wide native settings that must be in place before libtorch first runs a kernel.
/// <para>
/// oneDNN (libtorch's CPU GEMM/convolution backend, used for bfloat16 matmuls) caches a compiled primitive per distinct
/// shape, up to 1,024 of them by default. A serving engine sees a new GEMM shape for nearly every batch size × chunk
/// length, so that cache keeps growing for a long time: a 10-minute soak of mixed traffic on the bench preset grew the
/// resident set by 20 % with the managed heap and the live tensor count flat, and far less with the cache capped (at no
/// measurable cost in throughput: compiling a primitive is cheap next to a decode step). We cap it unless the
/// operator has set <c>ONEDNN_PRIMITIVE_CACHE_CAPACITY</c> themselves. oneDNN reads the variable from the native
/// environment when it creates the cache, so it is set with libc's <c>setenv</c> (.NET's own environment block is not
/// what native code reads on Linux).
/// </para>
/// <para>
/// glibc's allocator is left at its defaults on purpose: a fixed 128 KiB mmap threshold with two arenas
/// (<c>MALLOC_MMAP_THRESHOLD_</c>, <c>MALLOC_ARENA_MAX</c>) kept the soak's resident set flat but mapped and faulted in
/// every activation buffer of a batch-32 step anew, slowing bfloat16 decode 1.5–1.9× and prefill about 2×. The
/// fragmentation those settings avoided is returned instead by <see cref="NativeHeap.Trim"/> on a timer.
/// </para>
/// </summary>
internal static partial class NativeRuntimeDefaults
{
    public const string OneDnnCacheVariable = "ONEDNN_PRIMITIVE_CACHE_CAPACITY";

    /// <summary>
    /// Covers one step's shapes (decode and a prefill chunk: qkv, o, gate/up, down, lm_head); a miss recompiles one
    /// primitive. Soak on the bench preset: RSS +20 % in 10 min uncapped, +14 % at 64, +4 % in 4 min at 8.
    /// </summary>
    public const int OneDnnCacheCapacity = 16;

    /// <summary>Applies the defaults; idempotent; a no-op off Linux or where the operator chose a value.</summary>
    public static void Apply()
    {
        if (!OperatingSystem.IsLinux())
            return;
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(OneDnnCacheVariable)))
            return;
        string value = OneDnnCacheCapacity.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (SetEnv(OneDnnCacheVariable, value, 0) == 0)
            Environment.SetEnvironmentVariable(OneDnnCacheVariable, value);
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);
}
