namespace Serving.Architecture.Tests.Support;

internal static class RepositoryPaths
{
    /// <summary>The folder holding Serving.sln, above the test assembly.</summary>
    public static string Root
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Serving.sln")))
                    return dir.FullName;
            throw new DirectoryNotFoundException("Serving.sln not found above the test assembly");
        }
    }

    /// <summary>The built assembly of a <c>src/</c> project in the configuration these tests were built in.</summary>
    public static string BuiltAssembly(string project, string assemblyName)
    {
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string path = Path.Combine(Root, "src", project, "bin", output.Parent!.Name, output.Name, assemblyName + ".dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path} is not built", path);
    }
}
