using Serving.Authoring.Synthetic;
using Serving.Tests.Shared;

namespace Serving.Authoring.Tests.Synthetic;

public sealed class GeneratedFolderTests : IDisposable
{
    private readonly string _root = TestDirectories.Create("generated-folder");

    public void Dispose() => TestDirectories.Delete(_root);

    [Fact]
    public void Ensure_NoFolder_GeneratesOnceAndReusesIt()
    {
        string dir = Path.Combine(_root, "cache");
        int runs = 0;

        Assert.True(GeneratedFolder.Ensure(dir, staging => { runs++; Directory.CreateDirectory(staging); File.WriteAllText(Path.Combine(staging, "a"), "1"); }));
        Assert.False(GeneratedFolder.Ensure(dir, _ => runs++));

        Assert.Equal(1, runs);
        Assert.Equal("1", File.ReadAllText(Path.Combine(dir, "a")));
    }

    [Fact]
    public void Ensure_FolderWithoutTheMarker_RefusesAndLeavesItsFiles()
    {
        string dir = Path.Combine(_root, "someones-model");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{}");
        bool ran = false;

        var error = Assert.Throws<IOException>(() => GeneratedFolder.Ensure(dir, _ => ran = true));

        Assert.Contains("refusing to write over it", error.Message, StringComparison.Ordinal);
        Assert.False(ran);
        Assert.Equal(["config.json"], Directory.GetFiles(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void Ensure_StagingLeftByAStoppedStart_DeletedBeforeGenerating()
    {
        string dir = Path.Combine(_root, "cache");
        string left = Path.Combine(_root, "cache.staging-999999");
        Directory.CreateDirectory(left);
        File.WriteAllText(Path.Combine(left, "half-written"), "x");
        Directory.SetLastWriteTimeUtc(left, DateTime.UtcNow.AddMinutes(-5));

        GeneratedFolder.Ensure(dir, staging => File.WriteAllText(Path.Combine(staging, "a"), "1"));

        Assert.False(Directory.Exists(left));
        Assert.Equal([dir], Directory.GetDirectories(_root));
    }

    [Fact]
    public void DeleteLeftOvers_StagingALiveGeneratorHolds_KeptUntilReleased()
    {
        string held = Path.Combine(_root, "cache.staging-12345");
        Directory.CreateDirectory(held);
        using (new FileStream(Path.Combine(held, ".owner"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None))
        {
            Directory.SetLastWriteTimeUtc(held, DateTime.UtcNow.AddMinutes(-5));
            Assert.Equal(0, GeneratedFolder.DeleteLeftOvers(_root, "cache"));
            Assert.True(Directory.Exists(held));
        }

        Assert.Equal(1, GeneratedFolder.DeleteLeftOvers(_root, "cache"));
        Assert.False(Directory.Exists(held));
    }

    [Fact]
    public void Ensure_GeneratorThrows_LeavesNoStagingBehind()
    {
        string dir = Path.Combine(_root, "cache");

        Assert.Throws<OperationCanceledException>(() => GeneratedFolder.Ensure(dir, staging =>
        {
            File.WriteAllText(Path.Combine(staging, "a"), "1");
            throw new OperationCanceledException();
        }));

        Assert.Empty(Directory.GetDirectories(_root));
    }
}
