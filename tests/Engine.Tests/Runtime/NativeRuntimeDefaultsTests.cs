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
    public void Apply_OnGlibc_LargeBlocksStayMappedAfterALargerFree()
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

        // glibc's dynamic threshold would rise to 4 MiB after this free and serve the next block from a heap that
        // keeps its pages; with the fixed threshold it is mmapped (chunk header bit IS_MMAPPED = 0x2 at p - 8).
        NativeMemory.Free(NativeMemory.Alloc(4 << 20));
        void* block = NativeMemory.Alloc(512 << 10);
        try
        {
            nuint header = *((nuint*)block - 1);
            Assert.True((header & 2) != 0, $"a 512 KiB block was not mmapped (chunk header 0x{header:x})");
        }
        finally
        {
            NativeMemory.Free(block);
        }
    }
}
