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
/// glibc's allocator: libtorch frees and reallocates activation buffers of every size on every step from several
/// threads. With glibc's defaults (8 arenas per core; an mmap threshold that climbs to 32 MiB after the first large free,
/// so nearly every buffer lands in a heap that only shrinks from its top) the resident set crept up under steady traffic
/// even with the cache capped and free pages trimmed (<see cref="NativeHeap.Trim"/>): +5.6 % in a 10-minute soak. Two
/// arenas and a fixed 4 MiB threshold (prefill-sized buffers mapped and unmapped, decode-sized ones reused from the
/// heap) with the trim: +3.5 %. A 128 KiB threshold was flatter still but faulted in every activation of a batch-32 step
/// anew, slowing bfloat16 decode 1.5–1.9×. Applied with <c>mallopt</c> unless the operator set
/// <c>MALLOC_ARENA_MAX</c> or <c>MALLOC_MMAP_THRESHOLD_</c> (glibc has then applied theirs at start).
/// </para>
/// <para>
/// A fixed mmap threshold also fixes glibc's trim threshold at 128 KiB, so whenever a step's largest buffer (the float32
/// logits of a batch-32 step are 4 MB) was freed at the top of the heap, the heap gave those pages back at once and the
/// next step faulted them in again: on the bench preset, every other batch-32 step took about 5 ms longer. The top of
/// the heap now keeps up to <see cref="MallocTrimThresholdBytes"/> free between the periodic trims (<see cref="NativeHeap.Trim"/>),
/// unless the operator set <c>MALLOC_TRIM_THRESHOLD_</c>.
/// </para>
/// <para>
/// cuDNN attention: PyTorch's CUDA builds with cuDNN newer than 9.15 try cuDNN's attention first on Hopper and
/// Blackwell GPUs, and cuDNN builds an execution graph on the host for every new shape it sees. A decode step's key
/// length grows by one each step and its batch changes with the traffic, so nearly every step met a new shape: on an
/// H200 (PyTorch 2.11), steps whose shapes had not been seen before took 48–78 ms, the same steps once their shapes had
/// been seen 5–7 ms (docs/benchmarks/serving.md, "On an NVIDIA H200"). <c>TORCH_CUDNN_SDPA_DEPRIORITIZED=1</c> puts
/// flash attention (no mask) and memory-efficient attention (a padding mask) back in front, neither of which compiles
/// anything per shape; set unless the operator chose the variable. PyTorch reads it once, at the first attention call.
/// </para>
/// </summary>
public static partial class NativeRuntimeDefaults
{
    public const string OneDnnCacheVariable = "ONEDNN_PRIMITIVE_CACHE_CAPACITY";

    /// <summary>The PyTorch variable that moves cuDNN's attention behind flash and memory-efficient attention.</summary>
    public const string CuDnnAttentionVariable = "TORCH_CUDNN_SDPA_DEPRIORITIZED";

    /// <summary>
    /// Covers one step's shapes (decode and a prefill chunk: qkv, o, gate/up, down, lm_head); a miss recompiles one
    /// primitive. Soak on the bench preset: RSS +20 % in 10 min uncapped, +14 % at 64, +4 % in 4 min at 8.
    /// </summary>
    public const int OneDnnCacheCapacity = 16;

    public const string ArenaMaxVariable = "MALLOC_ARENA_MAX";
    public const string MmapThresholdVariable = "MALLOC_MMAP_THRESHOLD_";
    public const string TrimThresholdVariable = "MALLOC_TRIM_THRESHOLD_";

    /// <summary>glibc arenas: the hot allocations come from few threads at a time (the engine loop and the GEMM team).</summary>
    public const int MallocArenaMax = 2;

    /// <summary>Blocks at least this large are mmapped and unmapped on free: a prefill chunk's activations, not a decode step's.</summary>
    public const int MallocMmapThresholdBytes = 4 << 20;

    /// <summary>Free bytes the top of a heap keeps rather than giving back on every free: a few steps' largest buffers.</summary>
    public const int MallocTrimThresholdBytes = 64 << 20;

    // glibc's mallopt parameter numbers (malloc.h).
    private const int MTrimThreshold = -1;
    private const int MMmapThreshold = -3;
    private const int MArenaMax = -8;

    /// <summary>Whether this process applied the allocator settings (false off glibc or where the operator chose).</summary>
    public static bool AllocatorTuned { get; private set; }

    /// <summary>Applies the defaults; idempotent; a no-op off Linux or where the operator chose a value.</summary>
    public static void Apply()
    {
        if (!OperatingSystem.IsLinux())
            return;
        SetUnlessChosen(OneDnnCacheVariable, OneDnnCacheCapacity.ToString(System.Globalization.CultureInfo.InvariantCulture));
        SetUnlessChosen(CuDnnAttentionVariable, "1");

        if (!AllocatorTuned
            && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(ArenaMaxVariable))
            && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(MmapThresholdVariable)))
            AllocatorTuned = TryMallOpt(MArenaMax, MallocArenaMax) & TryMallOpt(MMmapThreshold, MallocMmapThresholdBytes)
                & (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(TrimThresholdVariable)) || TryMallOpt(MTrimThreshold, MallocTrimThresholdBytes));
    }

    /// <summary>Sets <paramref name="name"/> in the native environment, where libtorch reads it, unless the operator set it.</summary>
    private static void SetUnlessChosen(string name, string value)
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(name)) && SetEnv(name, value, 0) == 0)
            Environment.SetEnvironmentVariable(name, value);
    }

    private static bool TryMallOpt(int parameter, int value)
    {
        try
        {
            return MallOpt(parameter, value) == 1;
        }
        catch (EntryPointNotFoundException)
        {
            return false;                   // musl (Alpine): no such tuning, and a different allocator design anyway
        }
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int MallOpt(int parameter, int value);
}
