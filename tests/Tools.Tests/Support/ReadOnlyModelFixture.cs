namespace Serving.Tools.Tests.Support;

/// <summary>
/// A tiny model written by ModelGen into <c>ROOT/models/tiny</c> and made read-only; <see cref="Snapshot"/> covers
/// <c>ROOT/models</c>, so files a tool writes beside the model show up as well as changes inside it.
/// </summary>
public sealed class ReadOnlyModelFixture : IDisposable
{
    public ReadOnlyModelFixture()
    {
        Root = Path.Combine(Path.GetTempPath(), "serving-tests", $"tools-{Guid.NewGuid():N}");
        Models = Path.Combine(Root, "models");
        ModelDir = Path.Combine(Models, "tiny");
        CacheHome = Path.Combine(Root, "cache");
        Directory.CreateDirectory(Models);
        Directory.CreateDirectory(CacheHome);
        var (code, output) = ToolProcess.Run(ToolProcess.ModelGen, CacheHome, "model", "--preset", "tiny", "--out", ModelDir, "--seed", "3");
        if (code != 0)
            throw new InvalidOperationException($"ModelGen failed: {output}");
        FolderSnapshot.MakeReadOnly(Models);
    }

    public string Root { get; }

    /// <summary>The folder holding the model folder; nothing may appear in it.</summary>
    public string Models { get; }

    public string ModelDir { get; }

    /// <summary>The tools' cache home (<c>XDG_CACHE_HOME</c>), where generated files belong.</summary>
    public string CacheHome { get; }

    public SortedDictionary<string, string> Snapshot() => FolderSnapshot.Take(Models);

    public void Dispose()
    {
        FolderSnapshot.MakeWritable(Models);
        Directory.Delete(Root, recursive: true);
    }
}
