using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Serving.Engine.Model;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Runtime;

public sealed class HugePagesTests
{
    private const string ThpMode = "/sys/kernel/mm/transparent_hugepage/enabled";

    [Fact]
    public void Advise_TensorSmallerThanAHugePage_ReturnsFalse()
    {
        using var small = empty([1000], ScalarType.Float32);

        Assert.False(HugePages.Advise(small));
    }

    /// <summary>
    /// Where the kernel offers transparent huge pages on request, a KV cache's storage is really backed by them after
    /// construction (the kernel's own accounting in /proc/self/smaps), and reads as zeros.
    /// </summary>
    [Fact]
    public void KvCache_OnAKernelWithHugePagesOnRequest_StorageIsBackedByHugePagesAndZero()
    {
        // Collapsing memory that is already resident needs MADV_COLLAPSE (Linux 6.1).
        if (!OperatingSystem.IsLinux() || Environment.OSVersion.Version < new Version(6, 1) || !File.Exists(ThpMode)
            || File.ReadAllText(ThpMode).Contains("[never]", StringComparison.Ordinal))
            return;
        using var cache = new KvCache(Serving.Contracts.Configuration.KvCacheGroups.Single(1), 1024, 16, 1024, 4, 64, ScalarType.Float32, CPU);   // 16 MiB per tensor

        var keys = cache.Keys(0);
        Assert.Equal(0f, keys.abs().max().item<float>());
        // The advice covers the whole 2 MiB pages inside the tensor (the kernel splits the mapping there): look at the first.
        long firstHugePage = (Address(keys) + (2L << 20) - 1) / (2L << 20) * (2L << 20);
        long hugeKb = AnonHugePagesKb(firstHugePage);
        Assert.True(hugeKb >= 2048, $"the mapping at the key cache's first whole 2 MiB page has {hugeKb} kB in huge pages");
    }

    private static unsafe long Address(Tensor t) => (long)Unsafe.AsPointer(ref MemoryMarshal.GetReference(t.bytes));

    /// <summary>AnonHugePages of the /proc/self/smaps mapping that contains <paramref name="address"/>.</summary>
    private static long AnonHugePagesKb(long address)
    {
        bool inside = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-');
            int space = line.IndexOf(' ');
            if (dash > 0 && space > dash && long.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long from)
                && long.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long to))
            {
                inside = address >= from && address < to;
                continue;
            }

            if (inside && line.StartsWith("AnonHugePages:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        }

        return 0;
    }
}
