using Serving.AdapterStore.Sources;
using Serving.Contracts;

namespace Serving.AdapterStore.Tests.Sources;

public sealed class LocalFolderAdapterSourceTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "serving-tests", "local-" + Guid.NewGuid().ToString("N"));
    private readonly string _outside = Path.Combine(Path.GetTempPath(), "serving-tests", "outside-" + Guid.NewGuid().ToString("N"));

    public LocalFolderAdapterSourceTests()
    {
        foreach (string name in new[] { "alpha", "beta" })
        {
            Directory.CreateDirectory(Path.Combine(_root, name));
            File.WriteAllText(Path.Combine(_root, name, "adapter_config.json"), "{}");
        }

        Directory.CreateDirectory(Path.Combine(_root, "not-an-adapter"));
        Directory.CreateDirectory(_outside);
        File.WriteAllText(Path.Combine(_outside, "adapter_config.json"), "{}");
        Directory.CreateSymbolicLink(Path.Combine(_root, "escape"), _outside);
    }

    [Fact]
    public void List_OnlyFoldersWithAdapterConfig()
    {
        var ids = new LocalFolderAdapterSource(_root).List().Select(i => i.Value).ToList();
        Assert.Contains("alpha", ids);
        Assert.Contains("beta", ids);
        Assert.DoesNotContain("not-an-adapter", ids);
    }

    [Fact]
    public void Resolve_Missing_Null() => Assert.Null(new LocalFolderAdapterSource(_root).Resolve(AdapterId.Parse("gamma")));

    [Fact]
    public void Resolve_SymlinkOutsideRoot_Refused() =>
        Assert.Throws<UnauthorizedAccessException>(() => new LocalFolderAdapterSource(_root).Resolve(AdapterId.Parse("escape")));

    public void Dispose()
    {
        foreach (string dir in new[] { _root, _outside })
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
    }
}
