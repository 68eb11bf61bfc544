using System.Diagnostics;
using Serving.Engine.Kernels;

namespace Serving.Engine.Tests.Build;

/// <summary>
/// build/ServingNative.targets: where gcc exists the native library is built, copied next to the tests and loads, and a CPU
/// that has the instructions uses its kernels.
/// </summary>
public sealed class ServingNativeBuildTests
{
    [Fact]
    public void Build_WithGcc_CopiesTheAmxLibraryThatLoads()
    {
        if (!OperatingSystem.IsLinux() || !GccSupportsAmx())
            return;
        string library = Path.Combine(AppContext.BaseDirectory, AmxNative.LibraryFile);

        Assert.True(File.Exists(library), $"{library} was not built although gcc is present");
        Assert.DoesNotContain("does not load", AmxNative.Status);
        if (CpuFlags().IsSupersetOf(["amx_bf16", "amx_tile", "avx512_bf16"]) && Environment.GetEnvironmentVariable("SERVING_AMX") != "0")
            Assert.True(AmxNative.IsAvailable || AmxNative.Status.Contains("kernel", StringComparison.Ordinal), AmxNative.Status);
        if (CpuFlags().Contains("avx512_bf16") && Environment.GetEnvironmentVariable("SERVING_LORA_NATIVE") != "0")
            Assert.True(LoraNative.IsAvailable, LoraNative.Status);
        if (CpuFlags().Contains("avx512_bf16") && Environment.GetEnvironmentVariable("SERVING_GEMV_NATIVE") != "0")
            Assert.True(GemvNative.IsAvailable, GemvNative.Status);
        if (CpuFlags().Contains("avx512_vnni") && Environment.GetEnvironmentVariable("SERVING_INT8_NATIVE") != "0")
            Assert.True(Int8Native.IsAvailable, Int8Native.Status);
        // The emulated AMX kernels are built everywhere, so their tests never pass by returning early on a built library.
        if (Environment.GetEnvironmentVariable("SERVING_AMX_EMULATION") != "0")
            Assert.True(AmxTileEmulation.IsAvailable);
        // The README's second test run: every AMX path through the emulated kernels, which must then be what runs.
        if (Environment.GetEnvironmentVariable("SERVING_AMX") == "emulate")
            Assert.True(AmxNative.IsAvailable && AmxNative.Status.StartsWith("emulated", StringComparison.Ordinal), AmxNative.Status);
        if (Environment.GetEnvironmentVariable("SERVING_INT8_AMX") == "emulate")
            Assert.True(Int8AmxNative.IsAvailable && Int8AmxNative.Status.StartsWith("emulated", StringComparison.Ordinal), Int8AmxNative.Status);
        if (CpuFlags().IsSupersetOf(["amx_int8", "amx_tile", "avx512_vnni"]) && Environment.GetEnvironmentVariable("SERVING_INT8_AMX") != "0"
            && Environment.GetEnvironmentVariable("SERVING_INT8_NATIVE") != "0")
            Assert.True(Int8AmxNative.IsAvailable, Int8AmxNative.Status);
    }

    private static bool GccSupportsAmx()
    {
        try
        {
            using var gcc = Process.Start(new ProcessStartInfo("gcc", "-mamx-tile -mamx-bf16 -mamx-int8 -mavx512bf16 -E -x c /dev/null")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            })!;
            gcc.StandardOutput.ReadToEnd();
            gcc.StandardError.ReadToEnd();
            gcc.WaitForExit();
            return gcc.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static HashSet<string> CpuFlags() =>
        File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) is string line
            ? [.. line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)]
            : [];
}
