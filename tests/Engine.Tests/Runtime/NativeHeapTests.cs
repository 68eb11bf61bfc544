using System.Runtime.InteropServices;
using Serving.Engine.Runtime;

namespace Serving.Engine.Tests.Runtime;

public sealed unsafe class NativeHeapTests
{
    [Fact]
    public void Trim_FreedBlocksBelowALiveOne_ResidentSetDrops()
    {
        if (!OperatingSystem.IsLinux())
            return;
        Assert.True(NativeHeap.CanTrim, "glibc's malloc_trim was not found");

        // 4,096 blocks of 64 KiB (below the mmap threshold: they come from an arena), all written, then all freed but the
        // last, which pins the arena's top so that free() alone cannot give the pages back.
        const int blocks = 4096, size = 64 << 10;
        var pointers = new nint[blocks];
        for (int i = 0; i < blocks; i++)
        {
            pointers[i] = (nint)NativeMemory.Alloc(size);
            new Span<byte>((void*)pointers[i], size).Fill(1);
        }

        for (int i = 0; i < blocks - 1; i++)
            NativeMemory.Free((void*)pointers[i]);
        try
        {
            long before = ResidentBytes();
            NativeHeap.Trim();
            long released = before - ResidentBytes();
            Assert.True(released >= (long)blocks * size / 2, $"trim released {released >> 20} MiB of {((long)blocks * size) >> 20} MiB freed");
        }
        finally
        {
            NativeMemory.Free((void*)pointers[^1]);
        }
    }

    private static long ResidentBytes() =>
        long.Parse(File.ReadAllText("/proc/self/statm").Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) * Environment.SystemPageSize;
}
