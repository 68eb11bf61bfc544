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
}
