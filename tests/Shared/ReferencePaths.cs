namespace Serving.Tests.Shared;

/// <summary>Files of the repository the reference tests read: the committed renderings and the npm-installed packages.</summary>
internal static class ReferencePaths
{
    public static string Repository { get; } = Find();

    /// <summary>Where <c>npm ci --prefix tests/reference</c> (run by .ci/run) puts the real tokenizer and template files.</summary>
    public static string NodeModules => Path.Combine(Repository, "tests", "reference", "node_modules");

    public static string Renderings => Path.Combine(Repository, "tests", "Engine.Tests", "Templating", "Reference");

    /// <summary>A file of an installed package; a clear failure when the packages are not installed.</summary>
    public static string Package(string package, string file)
    {
        string path = Path.Combine(NodeModules, package, file);
        return File.Exists(path) ? path
            : throw new FileNotFoundException($"{path} is missing: run 'npm ci --prefix tests/reference' (.ci/run does) to install the reference packages");
    }

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Serving.sln")))
                return dir.FullName;
        throw new DirectoryNotFoundException("the repository root (Serving.sln) is not above the test assembly");
    }
}
