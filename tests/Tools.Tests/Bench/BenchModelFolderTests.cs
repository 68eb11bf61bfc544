using Serving.Tools.Tests.Support;

namespace Serving.Tools.Tests.Bench;

/// <summary>
/// Every Serving.Bench verb that takes <c>--model DIR</c> only reads that folder: run against a read-only copy of a
/// model, the folder and its parent are byte for byte what they were, and what the bench generates lands in its cache.
/// </summary>
public sealed class BenchModelFolderTests(ReadOnlyModelFixture model) : IClassFixture<ReadOnlyModelFixture>
{
    [Theory]
    [InlineData("engine", "--steps", "2", "--prompt", "8")]
    [InlineData("lora", "--steps", "2", "--dtype", "float32")]
    [InlineData("adapters", "--loads", "2")]
    [InlineData("serving", "--requests", "1", "--concurrency", "1", "--think-ms", "0")]
    [InlineData("steps", "--steps", "2", "--prompt", "8")]
    [InlineData("routing", "--requests", "1")]
    public void Verb_NamedModelFolder_LeavesTheFolderAndItsParentUnchanged(string verb, params string[] options)
    {
        var before = model.Snapshot();

        var (code, output) = ToolProcess.Run(ToolProcess.Bench, model.CacheHome, [verb, "--model", model.ModelDir, .. options]);

        Assert.True(code == 0, $"bench {verb} exited {code}: {output}");
        Assert.Equal(before, model.Snapshot());
    }

    [Fact]
    public void Engine_NamedFolderWithoutAModel_FailsNamingItAndWritesNothing()
    {
        string notAModel = Path.Combine(model.Root, "notes");
        Directory.CreateDirectory(notAModel);
        File.WriteAllText(Path.Combine(notAModel, "readme.txt"), "someone's files");
        var before = FolderSnapshot.Take(notAModel);

        var (code, output) = ToolProcess.Run(ToolProcess.Bench, model.CacheHome, "engine", "--model", notAModel, "--steps", "1");

        Assert.NotEqual(0, code);
        Assert.Contains("not a model folder", output, StringComparison.Ordinal);
        Assert.Equal(before, FolderSnapshot.Take(notAModel));
    }
}
