using System.Runtime.InteropServices;

namespace Serving.Engine.Kernels;

/// <summary>
/// Loads <c>libserving_amx.so</c> (built from <c>src/Engine/Native</c> by build/ServingNative.targets) for the classes
/// that bind its kernels (<see cref="AmxNative"/>, <see cref="LoraNative"/>), each with its own switch-off variable.
/// </summary>
internal static class ServingNativeLibrary
{
    public const string FileName = "libserving_amx.so";

    /// <summary>
    /// The library's handle, or 0 with <paramref name="whyNot"/> set: not an x86-64 Linux process, switched off by
    /// <paramref name="disableVariable"/>=0, or not built (no gcc at build time) / not loadable.
    /// </summary>
    public static nint Load(string disableVariable, out string? whyNot)
    {
        whyNot = null;
        if (!OperatingSystem.IsLinux() || !System.Runtime.Intrinsics.X86.X86Base.IsSupported)
            whyNot = "not an x86-64 Linux process";
        else if (Environment.GetEnvironmentVariable(disableVariable) == "0")
            whyNot = $"disabled by {disableVariable}=0";
        else if (!NativeLibrary.TryLoad(Path.Combine(AppContext.BaseDirectory, FileName), out nint handle))
            whyNot = $"{FileName} was not built (no gcc at build time) or does not load";
        else
            return handle;
        return 0;
    }
}
