namespace Serving.Server.Tests.Support;

/// <summary>The checkout's root (the folder holding Serving.sln), found upwards from the test binaries.</summary>
internal static class RepositoryRoot
{
    public static string Path { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Serving.sln")))
                return dir.FullName;
        }

        throw new InvalidOperationException($"no Serving.sln above {AppContext.BaseDirectory}");
    }
}
