using Microsoft.Extensions.Logging.Abstractions;
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

    [Theory]
    [InlineData("../../escape0")]
    [InlineData("0123456789abcdef/../x")]
    [InlineData("0123456789ABCDEF")]
    [InlineData("")]
    public void Write_VersionNotAHexDigest_NothingWrittenOrRead(string version)
    {
        var files = new DoraScaleFiles(Path.Combine(_root, "cache"), "00000000000000ba", 1L << 30, NullLogger.Instance);

        files.Write(version, Adapter(), [new DoraRowScale([1f, 1f], [0f, 0f])]);

        Assert.False(Directory.Exists(_root) && Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories).Any());
        Assert.Null(files.TryRead(version, Adapter()));
    }

    [Fact]
    public void TryRead_WrittenScales_SameValuesBack()
    {
        var files = new DoraScaleFiles(Path.Combine(_root, "cache"), "00000000000000ba", 1L << 30, NullLogger.Instance);

        files.Write("0123456789abcdef", Adapter(), [new DoraRowScale([0.5f, 2f], [0f, -1f])]);

        var read = Assert.Single(files.TryRead("0123456789abcdef", Adapter())!);
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
        probe.Write("00000000000000f0", Adapter(), [new DoraRowScale([1f, 1f], [0f, 0f])]);
        long size = new FileInfo(Path.Combine(probe.Folder, "00000000000000f0.safetensors")).Length;
        File.WriteAllText(Path.Combine(root, "not-ours.safetensors"), new string('x', 4096));
        var files = new DoraScaleFiles(root, "00000000000000bb", 2 * size, NullLogger.Instance);
        files.Write("00000000000000f1", Adapter(), [new DoraRowScale([1f, 1f], [0f, 0f])]);
        File.SetLastWriteTimeUtc(Path.Combine(probe.Folder, "00000000000000f0.safetensors"), DateTime.UtcNow.AddMinutes(-2));
        File.SetLastWriteTimeUtc(Path.Combine(files.Folder, "00000000000000f1.safetensors"), DateTime.UtcNow.AddMinutes(-1));

        Assert.NotNull(probe.TryRead("00000000000000f0", Adapter()));   // used now: the other one is the least recent
        files.Write("00000000000000f2", Adapter(), [new DoraRowScale([1f, 1f], [0f, 0f])]);

        Assert.True(File.Exists(Path.Combine(probe.Folder, "00000000000000f0.safetensors")));
        Assert.False(File.Exists(Path.Combine(files.Folder, "00000000000000f1.safetensors")));
        Assert.True(File.Exists(Path.Combine(files.Folder, "00000000000000f2.safetensors")));
        Assert.True(File.Exists(Path.Combine(root, "not-ours.safetensors")));
    }
}
