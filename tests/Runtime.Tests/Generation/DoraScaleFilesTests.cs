using Microsoft.Extensions.Logging.Abstractions;
using Serving.AdapterStore.Registry;
using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Lora;
using Serving.Runtime.Generation;

namespace Serving.Runtime.Tests.Generation;

public sealed class DoraScaleFilesTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "dora-scale-files-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
            Directory.Delete(_root, recursive: true);
    }

    private static LoraAdapterWeights Adapter() =>
        new("a", [new LoraModuleWeights(0, LoraTarget.Q, 1, 1f, [1f, 2f], [3f, 4f], [1f, 1f])]);

    private static AdapterRecord Record(string id, string version, string? tenant = null) =>
        new(AdapterId.Parse(id), "/adapters/" + id, version, DateTimeOffset.UnixEpoch, tenant);

    [Fact]
    public void TryRead_SameVersionUnderAnotherNameOrOwner_NothingShared()
    {
        var files = new DoraScaleFiles(Path.Combine(_root, "cache"), "00000000000000ba", 1L << 30, NullLogger.Instance);

        files.Write(Record("a", "0123456789abcdef", "tenant-1"), Adapter(), [new DoraRowScale([1f, 1f], [0f, 0f])]);

        Assert.NotNull(files.TryRead(Record("a", "0123456789abcdef", "tenant-1"), Adapter()));
        Assert.Null(files.TryRead(Record("a", "0123456789abcdef", "tenant-2"), Adapter()));
        Assert.Null(files.TryRead(Record("a", "0123456789abcdef"), Adapter()));
        Assert.Null(files.TryRead(Record("b", "0123456789abcdef", "tenant-1"), Adapter()));
    }

    [Theory]
    [InlineData("../../escape", "../../escape")]
    [InlineData("/etc/passwd", "0123456789abcdef/../../x")]
    public void Write_HostileOwnerOrVersion_FileStaysInItsFolderNamedByAHash(string tenant, string version)
    {
        var files = new DoraScaleFiles(Path.Combine(_root, "cache"), "00000000000000ba", 1L << 30, NullLogger.Instance);

        files.Write(Record("a", version, tenant), Adapter(), [new DoraRowScale([1f, 1f], [0f, 0f])]);

        string file = Assert.Single(Directory.GetFiles(_root, "*", SearchOption.AllDirectories));
        Assert.Equal(files.Folder, Path.GetDirectoryName(file));
        Assert.Matches("^[0-9a-f]{32}\\.safetensors$", Path.GetFileName(file));
    }

    [Fact]
    public void TryRead_WrittenScales_SameValuesBack()
    {
        var files = new DoraScaleFiles(Path.Combine(_root, "cache"), "00000000000000ba", 1L << 30, NullLogger.Instance);

        files.Write(Record("a", "0123456789abcdef"), Adapter(), [new DoraRowScale([0.5f, 2f], [0f, -1f])]);

        var read = Assert.Single(files.TryRead(Record("a", "0123456789abcdef"), Adapter())!);
        Assert.Equal([0.5f, 2f], read.Scale);
        Assert.Equal([0f, -1f], read.Shift);
        Assert.Single(Directory.GetFiles(Path.Combine(_root, "cache"), "*", SearchOption.AllDirectories));   // no partial file left behind
    }

    [Fact]
    public void BaseFingerprint_WeightsFileTouchedOrServedOtherwise_Changes()
    {
        string model = Path.Combine(_root, "model");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "config.json"), "{}");
        string weights = Path.Combine(model, "model.safetensors");
        File.WriteAllBytes(weights, new byte[16]);
        string first = DoraScaleFiles.BaseFingerprint(model, "Float32 cpu none");

        Assert.Equal(first, DoraScaleFiles.BaseFingerprint(model, "Float32 cpu none"));
        Assert.NotEqual(first, DoraScaleFiles.BaseFingerprint(model, "BFloat16 cpu none"));
        File.SetLastWriteTimeUtc(weights, File.GetLastWriteTimeUtc(weights).AddSeconds(1));
        Assert.NotEqual(first, DoraScaleFiles.BaseFingerprint(model, "Float32 cpu none"));
    }

    [Fact]
    public void Write_BeyondTheBudget_LeastRecentlyUsedDeletedAndOtherFilesLeft()
    {
        string root = Path.Combine(_root, "cache");
        var probe = new DoraScaleFiles(root, "00000000000000ba", 1L << 30, NullLogger.Instance);
        probe.Write(Record("af0", "00000000000000f0"), Adapter(), [new DoraRowScale([1f, 1f], [0f, 0f])]);
        string f0 = Assert.Single(Directory.GetFiles(probe.Folder));
        long size = new FileInfo(f0).Length;
        File.WriteAllText(Path.Combine(root, "not-ours.safetensors"), new string('x', 4096));
        var files = new DoraScaleFiles(root, "00000000000000bb", 2 * size, NullLogger.Instance);
        files.Write(Record("af1", "00000000000000f1"), Adapter(), [new DoraRowScale([1f, 1f], [0f, 0f])]);
        string f1 = Assert.Single(Directory.GetFiles(files.Folder));
        File.SetLastWriteTimeUtc(f0, DateTime.UtcNow.AddMinutes(-2));
        File.SetLastWriteTimeUtc(f1, DateTime.UtcNow.AddMinutes(-1));

        Assert.NotNull(probe.TryRead(Record("af0", "00000000000000f0"), Adapter()));   // used now: the other one is the least recent
        files.Write(Record("af2", "00000000000000f2"), Adapter(), [new DoraRowScale([1f, 1f], [0f, 0f])]);

        Assert.True(File.Exists(f0));
        Assert.False(File.Exists(f1));
        Assert.NotEqual(f1, Assert.Single(Directory.GetFiles(files.Folder)));   // the new one
        Assert.True(File.Exists(Path.Combine(root, "not-ours.safetensors")));
    }
}
