using System.Reflection;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Build;

public sealed class ElfVersionNeedPatcherTests : IDisposable
{
    private const string Version = "GLIBCXX_3.4.32";
    private const string Symbol = "_ZSt21ios_base_library_initv";
    private readonly string _dir = TestDirectories.Create("elf");

    private static string PackagedLibrary()
    {
        string root = typeof(ElfVersionNeedPatcherTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "NuGetPackageRoot").Value!;
        return Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
    }

    [Fact]
    public void Patch_BuildOutputCopy_IsAlreadyPatchedByTheBuild()
    {
        string copy = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.Equal("already patched", ElfVersionNeedPatcher.Patch(copy, Version, Symbol));
    }

    [Fact]
    public void Patch_PackagedLibrary_SetsOneFlagAndIsIdempotent()
    {
        string copy = Path.Combine(_dir, "libLibTorchSharp.so");
        File.Copy(PackagedLibrary(), copy);
        var before = File.ReadAllBytes(copy);
        Assert.Equal("patched", ElfVersionNeedPatcher.Patch(copy, Version, Symbol));
        var after = File.ReadAllBytes(copy);
        var changed = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToList();
        Assert.Single(changed);
        Assert.Equal(0x2, after[changed[0]] & 0x2);
        Assert.Equal("already patched", ElfVersionNeedPatcher.Patch(copy, Version, Symbol));
        Assert.Equal(after, File.ReadAllBytes(copy));
    }

    [Fact]
    public void Patch_HardLinkedCopy_LeavesTheOtherLinkUnpatched()
    {
        string cached = Path.Combine(_dir, "cached.so");
        string output = Path.Combine(_dir, "output.so");
        File.Copy(PackagedLibrary(), cached);
        using (var ln = System.Diagnostics.Process.Start("ln", [cached, output]))
        {
            ln.WaitForExit();
            Assert.Equal(0, ln.ExitCode);
        }
        var before = File.ReadAllBytes(cached);

        Assert.Equal("patched", ElfVersionNeedPatcher.Patch(output, Version, Symbol));

        Assert.Equal(before, File.ReadAllBytes(cached));
        Assert.Equal("already patched", ElfVersionNeedPatcher.Patch(output, Version, Symbol));
        Assert.False(File.Exists(output + ".patching"));
    }

    [Fact]
    public void Patch_OtherSymbolNeedsVersion_RefusesWithClearError()
    {
        string copy = Path.Combine(_dir, "other.so");
        File.Copy(PackagedLibrary(), copy);
        var ex = Assert.Throws<InvalidDataException>(() => ElfVersionNeedPatcher.Patch(copy, Version, "some_other_symbol"));
        Assert.Contains(Symbol, ex.Message);
    }

    [Fact]
    public void Patch_NotAnElfFile_Throws()
    {
        string path = Path.Combine(_dir, "text.so");
        File.WriteAllText(path, new string('x', 100));
        Assert.Contains("not an ELF file", Assert.Throws<InvalidDataException>(() => ElfVersionNeedPatcher.Patch(path, Version, Symbol)).Message);
    }

    public void Dispose() => TestDirectories.Delete(_dir);
}
