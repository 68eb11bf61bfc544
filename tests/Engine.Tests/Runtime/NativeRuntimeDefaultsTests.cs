using System.Runtime.InteropServices;
using Serving.Engine.Runtime;

namespace Serving.Engine.Tests.Runtime;

public sealed partial class NativeRuntimeDefaultsTests
{
    [LibraryImport("libc", EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr GetEnv(string name);

    [Theory]
    [InlineData(NativeRuntimeDefaults.OneDnnCacheVariable, NativeRuntimeDefaults.OneDnnCacheCapacity)]
    [InlineData(NativeRuntimeDefaults.CuDnnAttentionVariable, 1)]           // cuDNN attention behind flash / memory-efficient
    public void Apply_OnLinux_NativeEnvironmentCarriesTheDefault(string variable, int value)
    {
        if (!OperatingSystem.IsLinux())
            return;
        string? chosen = Environment.GetEnvironmentVariable(variable);
        NativeRuntimeDefaults.Apply();

        // What native code (oneDNN, PyTorch inside libtorch) reads, not .NET's copy of the environment.
        string? native = Marshal.PtrToStringUTF8(GetEnv(variable));
        Assert.Equal(string.IsNullOrEmpty(chosen) ? value.ToString(System.Globalization.CultureInfo.InvariantCulture) : chosen, native);
    }

    [Fact]
    public void Apply_OnGlibcWithoutOperatorSettings_AllocatorTuned()
    {
        // Whether a given block ends up mapped depends on what the process's heaps hold at that moment (a free chunk or
        // a large top is reused first), so the effect is proven by the soak (docs/reliability.md), not by one allocation here.
        if (!OperatingSystem.IsLinux() || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(NativeRuntimeDefaults.ArenaMaxVariable))
            || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(NativeRuntimeDefaults.MmapThresholdVariable)))
            return;
        NativeRuntimeDefaults.Apply();
        NativeRuntimeDefaults.Apply();
        Assert.True(NativeRuntimeDefaults.AllocatorTuned, "glibc refused the arena, mmap-threshold or trim-threshold setting");
    }
}
