using System.Runtime.InteropServices;
using Serving.Engine.Runtime;

namespace Serving.Engine.Tests.Runtime;

public sealed unsafe partial class NativeRuntimeDefaultsTests
{
    [LibraryImport("libc", EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr GetEnv(string name);

    [Fact]
    public void Apply_OnLinux_NativeEnvironmentCarriesTheOneDnnCacheCap()
    {
        if (!OperatingSystem.IsLinux())
            return;
        string? chosen = Environment.GetEnvironmentVariable(NativeRuntimeDefaults.OneDnnCacheVariable);
        NativeRuntimeDefaults.Apply();

        // What native code (oneDNN inside libtorch) reads, not .NET's copy of the environment.
        string? native = Marshal.PtrToStringUTF8(GetEnv(NativeRuntimeDefaults.OneDnnCacheVariable));
        Assert.Equal(string.IsNullOrEmpty(chosen) ? NativeRuntimeDefaults.OneDnnCacheCapacity.ToString(System.Globalization.CultureInfo.InvariantCulture) : chosen, native);
    }

    [Fact]
    public void Apply_OnGlibc_BlocksAboveTheThresholdStayMappedAfterALargerFree()
    {
        if (!OperatingSystem.IsLinux())
            return;
        NativeRuntimeDefaults.Apply();
        if (!NativeRuntimeDefaults.AllocatorTuned)
        {
            Assert.False(string.IsNullOrEmpty(Environment.GetEnvironmentVariable(NativeRuntimeDefaults.ArenaMaxVariable))
                && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(NativeRuntimeDefaults.MmapThresholdVariable)),
                "mallopt was refused although the operator set neither allocator variable");
            return;
        }

        // glibc's dynamic threshold would rise to 16 MiB after this free and serve the next block from a heap that keeps its
        // pages; with the fixed threshold it is mmapped (chunk header bit IS_MMAPPED = 0x2 at p - 8), a smaller one is not.
        NativeMemory.Free(NativeMemory.Alloc(16 << 20));
        void* large = NativeMemory.Alloc(NativeRuntimeDefaults.MallocMmapThresholdBytes + (1 << 20));
        void* small = NativeMemory.Alloc(NativeRuntimeDefaults.MallocMmapThresholdBytes / 4);
        try
        {
            nuint header = *((nuint*)large - 1);
            Assert.True((header & 2) != 0, $"a block above the threshold was not mmapped (chunk header 0x{header:x})");
            Assert.True((*((nuint*)small - 1) & 2) == 0, "a block below the threshold was mmapped");
        }
        finally
        {
            NativeMemory.Free(large);
            NativeMemory.Free(small);
        }
    }
}
